import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../Api.ts"
import { ServiceUnavailable } from "../Domain/Errors.ts"
import { readiness } from "../Sql/Migrator.ts"

export const OpsHttpLive = HttpApiBuilder.group(Api, "ops", (handlers) =>
  Effect.succeed(
    handlers
      .handle("health", () => Effect.succeed({ status: "ok" as const }))
      .handle("ready", () =>
        Effect.flatMap(readiness, (ready) =>
          ready
            ? Effect.succeed({ status: "ready" as const })
            : Effect.fail(
                new ServiceUnavailable({ message: "The database is unreachable or not migrated." }),
              ),
        ),
      ),
  ),
)
