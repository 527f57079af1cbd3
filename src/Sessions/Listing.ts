/** `GET /sessions`: a page of the organization's sessions, as the list route answers it. */
import { type Context, Effect, Option } from "effect"
import { InvalidRequest } from "../Domain/Errors.ts"
import type { OrgId } from "../Domain/Ids.ts"
import type { Session } from "../Domain/Session.ts"
import { DEFAULT_LIST_LIMIT, type ListSessionsParams, type SessionList } from "../Domain/SessionList.ts"
import type { SessionsRepo } from "./Repo.ts"

/** A cursor that names no session of the caller's organization (another's, or none at all). */
const unknownCursor = (id: string) => {
  const message = `no session ${id} in this organization; pass the id of the last session of the previous page`
  return new InvalidRequest({
    message: `Invalid request: starting_after: ${message}`,
    param: "starting_after",
    issues: [{ path: "starting_after", message }],
  })
}

/** List items leave the transcript out unless it was asked for. */
const withoutTranscript = ({ transcript: _, ...rest }: Session) => rest

export const listSessions =
  (repo: Context.Tag.Service<typeof SessionsRepo>) => (orgId: OrgId, params: ListSessionsParams) => {
    const transcripts = params.include?.includes("transcript") ?? false
    return Effect.flatMap(
      repo.list({
        orgId,
        agentId: params.agent_id,
        statuses: params.status,
        createdAfter: params.created_after,
        createdBefore: params.created_before,
        startingAfter: params.starting_after,
        limit: params.limit ?? DEFAULT_LIST_LIMIT,
        transcripts,
      }),
      Option.match({
        onNone: () => Effect.fail(unknownCursor(params.starting_after ?? "")),
        onSome: ({ sessions, hasMore }) =>
          Effect.succeed<SessionList>({
            object: "list" as const,
            data: transcripts ? sessions : sessions.map(withoutTranscript),
            has_more: hasMore,
          }),
      }),
    )
  }
