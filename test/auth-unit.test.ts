/** The ApiKeys service over the in-memory repository (no database, no HTTP), on a TestClock. */
import { describe, expect, test } from "bun:test"
import { Effect, Option, TestClock, TestContext } from "effect"
import { ApiKeys } from "../src/Auth/ApiKeys.ts"

/** Each test gets its own service and tables; the TestClock starts at 0 and moves when told. */
const run = <A, E>(effect: Effect.Effect<A, E, ApiKeys>) =>
  Effect.runPromise(effect.pipe(Effect.provide(ApiKeys.Test), Effect.provide(TestContext.TestContext)))

describe("organizations", () => {
  test("are listed newest first", async () => {
    const { created, listed } = await run(
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const first = yield* keys.createOrg("first")
        yield* TestClock.adjust("1 second")
        const second = yield* keys.createOrg("second")
        return { created: [first, second], listed: yield* keys.listOrgs }
      }),
    )
    expect(created).toEqual([
      { org_id: expect.any(String), name: "first", created_at: 0 },
      { org_id: expect.any(String), name: "second", created_at: 1 },
    ])
    expect(listed).toEqual([...created].reverse())
  })
})

describe("API keys", () => {
  test("a created key authenticates as its organization until it is revoked", async () => {
    const result = await run(
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const org = yield* keys.createOrg("acme")
        const key = yield* keys.createKey(org.org_id, "ci")
        const before = yield* keys.authenticate(key.api_key)
        yield* TestClock.adjust("10 seconds")
        const revoked = yield* keys.revokeKey(key.key_id)
        yield* TestClock.adjust("10 seconds")
        // revoking again is fine and keeps the first revocation time
        yield* keys.revokeKey(key.key_id)
        return {
          org,
          key,
          before,
          revoked,
          after: yield* keys.authenticate(key.api_key),
          listed: yield* keys.listKeys(org.org_id),
        }
      }),
    )
    expect(result.key.api_key).toStartWith("pk_live_")
    expect(result.key.prefix).toBe(result.key.api_key.slice(0, 14))
    expect<unknown>(result.before).toEqual(Option.some(result.org.org_id))
    expect(result.revoked).toEqual({ key_id: result.key.key_id, revoked: true })
    expect(result.after).toEqual(Option.none())
    // never the key itself
    expect(result.listed).toEqual([
      { key_id: result.key.key_id, name: "ci", prefix: result.key.prefix, created_at: 0, revoked_at: 10 },
    ])
  })

  test("unknown keys, keys of another format and unknown ids are refused", async () => {
    const result = await run(
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const org = yield* keys.createOrg("acme")
        const key = yield* keys.createKey(org.org_id, null)
        return {
          // one character changed (to another: a key may end in "x" already)
          tampered: yield* keys.authenticate(
            `${key.api_key.slice(0, -1)}${key.api_key.endsWith("x") ? "y" : "x"}`,
          ),
          foreign: yield* keys.authenticate("sk_live_whatever"),
          noOrg: yield* Effect.flip(keys.createKey(crypto.randomUUID(), null)),
          noOrgList: yield* Effect.flip(keys.listKeys(crypto.randomUUID())),
          noKey: yield* Effect.flip(keys.revokeKey(crypto.randomUUID())),
        }
      }),
    )
    expect(result.tampered).toEqual(Option.none())
    expect(result.foreign).toEqual(Option.none())
    expect(result.noOrg._tag).toBe("OrganizationNotFound")
    expect(result.noOrgList._tag).toBe("OrganizationNotFound")
    expect(result.noKey._tag).toBe("ApiKeyNotFound")
  })

  test("keys are listed per organization, newest first, and counted across all", async () => {
    const result = await run(
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const [a, b] = [yield* keys.createOrg("a"), yield* keys.createOrg("b")]
        const empty = yield* keys.countKeys
        yield* keys.createKey(a.org_id, "one")
        yield* TestClock.adjust("1 second")
        yield* keys.createKey(a.org_id, "two")
        yield* keys.createKey(b.org_id, "other")
        return { empty, count: yield* keys.countKeys, listed: yield* keys.listKeys(a.org_id) }
      }),
    )
    expect(result.empty).toBe(0)
    expect(result.count).toBe(3)
    expect(result.listed.map((key) => key.name)).toEqual(["two", "one"])
  })
})
