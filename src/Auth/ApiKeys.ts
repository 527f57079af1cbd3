import { Context, Effect, Layer, Option } from "effect"
import { toUnix } from "../Domain/Envelope.ts"
import { ApiKeyNotFound, OrganizationNotFound } from "../Domain/Errors.ts"
import type { OrgId } from "../Domain/Ids.ts"
import { randomBase62 } from "../Domain/RequestId.ts"
import { type ApiKeyRow, AuthRepo, type OrgRow } from "./Repo.ts"

const KEY_PREFIX = "pk_live_"

/** Only this digest of a key is stored; the key itself is shown once. */
export const hashKey = (key: string): string => new Bun.CryptoHasher("sha256").update(key).digest("hex")

const orgView = (org: OrgRow) => ({ org_id: org.id, name: org.name, created_at: toUnix(org.created_at) })

const keyView = (row: ApiKeyRow) => ({
  key_id: row.id,
  name: row.name,
  prefix: row.prefix,
  created_at: toUnix(row.created_at),
  revoked_at: row.revoked_at === null ? null : toUnix(row.revoked_at),
})

const make = Effect.gen(function* () {
  const repo = yield* AuthRepo

  const createOrg = (name: string) => Effect.map(repo.insertOrg(crypto.randomUUID(), name), orgView)

  const listOrgs = Effect.map(repo.listOrgs, (rows) => rows.map(orgView))

  const createKey = (orgId: string, name: string | null) =>
    Effect.gen(function* () {
      if (Option.isNone(yield* repo.findOrg(orgId)))
        return yield* new OrganizationNotFound({ message: `No organization with id ${orgId}.` })
      const apiKey = KEY_PREFIX + randomBase62(40)
      const row = yield* repo.insertKey({
        id: crypto.randomUUID(),
        orgId,
        name,
        prefix: apiKey.slice(0, KEY_PREFIX.length + 6),
        hash: hashKey(apiKey),
      })
      return { key_id: row.id, api_key: apiKey, prefix: row.prefix, created_at: toUnix(row.created_at) }
    })

  const listKeys = (orgId: string) =>
    Effect.gen(function* () {
      if (Option.isNone(yield* repo.findOrg(orgId)))
        return yield* new OrganizationNotFound({ message: `No organization with id ${orgId}.` })
      return (yield* repo.listKeys(orgId)).map(keyView)
    })

  const revokeKey = (keyId: string) =>
    Effect.flatMap(repo.revokeKey(keyId), (row) =>
      Option.match(row, {
        onNone: () => Effect.fail(new ApiKeyNotFound({ message: `No API key with id ${keyId}.` })),
        onSome: (r) => Effect.succeed({ key_id: r.id, revoked: true as const }),
      }),
    )

  /** The organization of a live key; every lookup hits the database so revocation is immediate. */
  const authenticate = (apiKey: string) =>
    apiKey.startsWith(KEY_PREFIX)
      ? Effect.map(
          repo.orgForKeyHash(hashKey(apiKey)),
          Option.map((id) => id as OrgId),
        )
      : Effect.succeed(Option.none<OrgId>())

  return { createOrg, listOrgs, createKey, listKeys, revokeKey, authenticate, countKeys: repo.countKeys }
})

export class ApiKeys extends Context.Tag("Parley/ApiKeys")<ApiKeys, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(ApiKeys, make).pipe(Layer.provide(AuthRepo.Live))
}
