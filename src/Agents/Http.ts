import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { Agents } from "../Agents.ts"
import { Api } from "../Api.ts"
import { CurrentOrg } from "../Auth/Middleware.ts"
import { envelope } from "../Domain/Envelope.ts"
import type { OrgId } from "../Domain/Ids.ts"

/** What `run` gives for the request's organization, in an envelope of type `object`. */
const answer = <O extends string, A, E, R>(object: O, run: (orgId: OrgId) => Effect.Effect<A, E, R>) =>
  CurrentOrg.pipe(
    Effect.flatMap(({ orgId }) => run(orgId)),
    Effect.flatMap((data) => envelope(object, data)),
  )

export const AgentsHttpLive = HttpApiBuilder.group(Api, "agents", (handlers) =>
  Effect.gen(function* () {
    const agents = yield* Agents
    return (
      handlers
        .handle("create", ({ payload }) => answer("voice_agent", (orgId) => agents.create(orgId, payload)))
        .handle("list", ({ urlParams }) =>
          answer("list", (orgId) => agents.list(orgId, urlParams.limit ?? 20, urlParams.offset ?? 0)),
        )
        // The hot read. Its agent was decoded by the Agent schema when it was read (and is cached so),
        // so it is written as JSON as it is: encoding it by that schema again cost ~30 µs a request.
        .handle("get", ({ path }) =>
          answer("voice_agent", (orgId) => agents.get(orgId, path.id)).pipe(
            Effect.map((body) => HttpServerResponse.unsafeJson(body)),
          ),
        )
        .handle("preview", ({ path }) =>
          answer("voice_agent_preview", (orgId) => agents.preview(orgId, path.id)),
        )
        .handle("update", ({ path, payload }) =>
          answer("voice_agent", (orgId) => agents.update(orgId, path.id, payload)),
        )
        .handle("delete", ({ path }) =>
          answer("voice_agent.deleted", (orgId) => agents.remove(orgId, path.id)),
        )
    )
  }),
)
