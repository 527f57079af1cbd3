import { HttpApiBuilder } from "@effect/platform"
import { Effect, Schema } from "effect"
import { Api } from "../Api.ts"
import { CurrentOrg } from "../Auth/Middleware.ts"
import { envelope, envelopeJson } from "../Domain/Envelope.ts"
import { Session } from "../Domain/Session.ts"
import { waitParked } from "../Http/Parking.ts"
import { DEFAULT_WAIT_SECONDS, Sessions } from "../Sessions.ts"

const sessionEnvelope = (data: Session) => envelope("voice_session", data, data.status)

/** A row's data as JSON, encoded once however many woken waiters answer with it (they share the row). */
const encoded = new WeakMap<Session, string>()
const encodeSession = Schema.encodeSync(Session)
const dataJson = (data: Session) => {
  const known = encoded.get(data)
  if (known !== undefined) return known
  const json = JSON.stringify(encodeSession(data))
  encoded.set(data, json)
  return json
}

/** The answer of a long-poll sent after its fiber ended: what `get` answers, with the row's JSON shared. */
const parkedAnswer = (data: Session, requestId: string) =>
  new Response(
    envelopeJson("voice_session", data.status, requestId, Math.floor(Date.now() / 1000), dataJson(data)),
    {
      headers: { "content-type": "application/json" },
    },
  )

export const SessionsHttpLive = HttpApiBuilder.group(Api, "sessions", (handlers) =>
  Effect.gen(function* () {
    const sessions = yield* Sessions
    return handlers
      .handle("start", ({ payload }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => sessions.start(orgId, payload)),
          Effect.flatMap((data) => envelope("voice_session", data, "active")),
        ),
      )
      .handle("list", ({ urlParams }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => sessions.list(orgId, urlParams)),
          Effect.flatMap((data) => envelope("list", data)),
        ),
      )
      .handle("get", ({ path, urlParams }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => {
            if (!urlParams.wait_for_completion) return sessions.read(orgId, path.id, false, 0)
            const timeout = urlParams.timeout_seconds ?? DEFAULT_WAIT_SECONDS
            return waitParked(
              (answer) => sessions.watch(orgId, path.id, timeout, answer),
              sessions.read(orgId, path.id, true, timeout),
              parkedAnswer,
            )
          }),
          Effect.flatMap(sessionEnvelope),
        ),
      )
      .handle("complete", ({ path, payload }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => sessions.complete(orgId, path.id, payload)),
          Effect.flatMap((data) =>
            envelope("voice_session", data, data.status, {
              results: data.results,
              ...(data.extraction_warnings.length > 0
                ? { extraction_warnings: data.extraction_warnings }
                : {}),
            }),
          ),
        ),
      )
  }),
)
