import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../Api.ts"
import { CurrentOrg } from "../Auth/Middleware.ts"
import { envelope } from "../Domain/Envelope.ts"
import { DEFAULT_WAIT_SECONDS, Sessions } from "../Sessions.ts"

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
          Effect.flatMap(({ orgId }) =>
            sessions.read(
              orgId,
              path.id,
              urlParams.wait_for_completion ?? false,
              urlParams.timeout_seconds ?? DEFAULT_WAIT_SECONDS,
            ),
          ),
          Effect.flatMap((data) => envelope("voice_session", data, data.status)),
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
