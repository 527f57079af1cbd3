import { Context, Effect, Layer, Option } from "effect"
import { Caches, KEYS_TOPIC } from "../Cache.ts"
import { ApiKeyNotFound, OrganizationNotFound } from "../Domain/Errors.ts"
import type { OrgId } from "../Domain/Ids.ts"
import { randomBase62 } from "../Domain/RequestId.ts"
import { AuthRepo } from "./Repo.ts"

const KEY_PREFIX = "pk_live_"

/** Only this digest of a key is stored; the key itself is shown once. */
export const hashKey = (key: string): string => Bun.SHA256.hash(key, "hex")

const make = Effect.gen(function* () {
  const repo = yield* AuthRepo
  const caches = yield* Caches

  const createOrg = (name: string) => repo.insertOrg({ id: crypto.randomUUID(), name })

  const createKey = (orgId: string, name: string | null) =>
    Effect.gen(function* () {
      if (Option.isNone(yield* repo.findOrg(orgId)))
        return yield* new OrganizationNotFound({ message: `No organization with id ${orgId}.` })
      const apiKey = randomBase62(40, KEY_PREFIX)
      const key = yield* repo.insertKey({
        id: crypto.randomUUID(),
        org_id: orgId,
        name,
        prefix: apiKey.slice(0, KEY_PREFIX.length + 6),
        key_hash: hashKey(apiKey),
      })
      return { key_id: key.key_id, api_key: apiKey, prefix: key.prefix, created_at: key.created_at }
    })

  const listKeys = (orgId: string) =>
    Effect.gen(function* () {
      if (Option.isNone(yield* repo.findOrg(orgId)))
        return yield* new OrganizationNotFound({ message: `No organization with id ${orgId}.` })
      return yield* repo.listKeys(orgId)
    })

  const revokeKey = (keyId: string) =>
    Effect.flatMap(repo.revokeKey(keyId), (row) => {
      if (Option.isNone(row))
        return Effect.fail(new ApiKeyNotFound({ message: `No API key with id ${keyId}.` }))
      // the statement notified the other instances; this one forgets its keys before answering
      caches.invalidate(KEYS_TOPIC)
      return Effect.succeed({ key_id: row.value.key_id, revoked: true as const })
    })

  /** The organization of a live key: cached (a revocation invalidates it on every instance), a miss never. */
  /** `hash` is `hashKey(apiKey)`, passed in when the caller has it already (it keys rate limits too). */
  const authenticate = (apiKey: string, hash = hashKey(apiKey)) =>
    apiKey.startsWith(KEY_PREFIX)
      ? caches.apiKeys.through(
          hash,
          Effect.suspend(() => repo.orgForKeyHash(hash)),
        )
      : Effect.succeed(Option.none<OrgId>())

  return {
    createOrg,
    listOrgs: repo.listOrgs,
    createKey,
    listKeys,
    revokeKey,
    authenticate,
    countKeys: repo.countKeys,
  }
})

export class ApiKeys extends Context.Tag("Parley/ApiKeys")<ApiKeys, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(ApiKeys, make).pipe(Layer.provide([AuthRepo.Live, Caches.Live]))
  /** Over the in-memory repository, for unit tests. */
  static readonly Test = Layer.effect(ApiKeys, make).pipe(Layer.provide([AuthRepo.Test, Caches.Live]))
}
