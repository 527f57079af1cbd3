import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect, Schema } from "effect"
import { Api } from "../Api.ts"
import { CurrentOrg } from "../Auth/Middleware.ts"
import { envelope } from "../Domain/Envelope.ts"
import type { Session } from "../Domain/Session.ts"
import { waitParked } from "../Http/Parking.ts"
import { DEFAULT_WAIT_SECONDS, Sessions } from "../Sessions.ts"
import { SessionEnvelope } from "./Api.ts"

const sessionEnvelope = (data: typeof Session.Type) => envelope("voice_session", data, data.status)

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
              (data) =>
                sessionEnvelope(data).pipe(
                  Effect.flatMap(Schema.encode(SessionEnvelope)),
                  Effect.flatMap((body) => HttpServerResponse.json(body)),
                  Effect.orDie,
                ),
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
