import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../Api.ts"
import { envelope } from "../Domain/Envelope.ts"
import { ApiKeys } from "./ApiKeys.ts"

/** Admin lists are short and unpaginated: everything, newest first. */
const list = <A>(data: ReadonlyArray<A>) => ({
  object: "list" as const,
  data,
  has_more: false,
  total_count: data.length,
})

export const AdminHttpLive = HttpApiBuilder.group(Api, "admin", (handlers) =>
  Effect.gen(function* () {
    const keys = yield* ApiKeys
    return handlers
      .handle("createOrg", ({ payload }) =>
        Effect.flatMap(keys.createOrg(payload.name), (data) => envelope("organization", data)),
      )
      .handle("listOrgs", () => Effect.flatMap(keys.listOrgs, (data) => envelope("list", list(data))))
      .handle("createKey", ({ path, payload }) =>
        Effect.flatMap(keys.createKey(path.org_id, payload.name ?? null), (data) =>
          envelope("api_key", data),
        ),
      )
      .handle("listKeys", ({ path }) =>
        Effect.flatMap(keys.listKeys(path.org_id), (data) => envelope("list", list(data))),
      )
      .handle("revokeKey", ({ path }) =>
        Effect.flatMap(keys.revokeKey(path.key_id), (data) => envelope("api_key", data)),
      )
  }),
)
