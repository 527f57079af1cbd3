import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Agents } from "../Agents.ts"
import { Api } from "../Api.ts"
import { CurrentOrg } from "../Auth/Middleware.ts"
import { envelope } from "../Domain/Envelope.ts"

export const AgentsHttpLive = HttpApiBuilder.group(Api, "agents", (handlers) =>
  Effect.gen(function* () {
    const agents = yield* Agents
    return handlers
      .handle("create", ({ payload }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => agents.create(orgId, payload)),
          Effect.flatMap((data) => envelope("voice_agent", data)),
        ),
      )
      .handle("list", ({ urlParams }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => agents.list(orgId, urlParams.limit ?? 20, urlParams.offset ?? 0)),
          Effect.flatMap((data) => envelope("list", data)),
        ),
      )
      .handle("get", ({ path }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => agents.get(orgId, path.id)),
          Effect.flatMap((data) => envelope("voice_agent", data)),
        ),
      )
      .handle("preview", ({ path }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => agents.preview(orgId, path.id)),
          Effect.flatMap((data) => envelope("voice_agent_preview", data)),
        ),
      )
      .handle("update", ({ path, payload }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => agents.update(orgId, path.id, payload)),
          Effect.flatMap((data) => envelope("voice_agent", data)),
        ),
      )
      .handle("delete", ({ path }) =>
        CurrentOrg.pipe(
          Effect.flatMap(({ orgId }) => agents.remove(orgId, path.id)),
          Effect.flatMap((data) => envelope("voice_agent.deleted", data)),
        ),
      )
  }),
)
