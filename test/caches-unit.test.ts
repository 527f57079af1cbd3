/** The caches alone: concurrent misses of one key share one load. */
import { expect, test } from "bun:test"
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import { Caches } from "../src/Cache.ts"
import { OrgId } from "../src/Domain/Ids.ts"
import { until } from "./support/wait.ts"

const ORG = OrgId.make("7b2c4d2e-3f4a-4b5c-8d6e-9f0a1b2c3d4e")

/** A load that counts itself and answers when the gate opens (or fails, as the database would). */
const gatedLoad = Effect.gen(function* () {
  const gate = yield* Deferred.make<Option.Option<OrgId>, string>()
  const count = { loads: 0 }
  const load = Effect.zipRight(
    Effect.sync(() => void count.loads++),
    Deferred.await(gate),
  )
  return { gate, count, load }
})

const run = <A, E>(effect: Effect.Effect<A, E, Caches>) =>
  Effect.runPromise(
    Effect.provide(
      Effect.zipRight(
        Effect.map(Caches, (caches) => caches.resume()),
        effect,
      ),
      Caches.Live,
    ),
  )

const forkMany = <A, E>(n: number, effect: Effect.Effect<A, E>) =>
  Effect.forEach(Array.from({ length: n }), () => Effect.fork(effect))

test("concurrent misses of one key make one load, whose row they all get and which is kept", async () => {
  const result = await run(
    Effect.gen(function* () {
      const caches = yield* Caches
      const { gate, count, load } = yield* gatedLoad
      const fibers = yield* forkMany(5, caches.apiKeys.through("key", load))
      yield* until(Effect.sync(() => count.loads === 1))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, Option.some(ORG))
      const rows = yield* Effect.forEach(fibers, Fiber.join)
      // kept: the next request makes no load
      const again = yield* caches.apiKeys.through("key", load)
      return { loads: count.loads, rows, again, size: caches.apiKeys.size() }
    }),
  )
  expect(result.loads).toBe(1)
  expect(result.rows).toEqual(Array.from({ length: 5 }, () => Option.some(ORG)))
  expect(result.again).toEqual(Option.some(ORG))
  expect(result.size).toBe(1)
})

test("a shared load's failure is every joiner's; nothing is kept, and the next request loads again", async () => {
  const result = await run(
    Effect.gen(function* () {
      const caches = yield* Caches
      const { gate, count, load } = yield* gatedLoad
      const fibers = yield* forkMany(3, caches.apiKeys.through("key", load))
      yield* until(Effect.sync(() => count.loads === 1))
      yield* Effect.yieldNow()
      yield* Deferred.fail(gate, "database down")
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      const fresh = yield* gatedLoad
      yield* Deferred.succeed(fresh.gate, Option.some(ORG))
      const next = yield* caches.apiKeys.through("key", fresh.load)
      return { loads: count.loads, failed: exits.every(Exit.isFailure), next, nextLoads: fresh.count.loads }
    }),
  )
  expect(result.loads).toBe(1)
  expect(result.failed).toBe(true)
  expect(result.next).toEqual(Option.some(ORG))
  expect(result.nextLoads).toBe(1)
})

test("joiners of a load whose request went away load for themselves", async () => {
  const result = await run(
    Effect.gen(function* () {
      const caches = yield* Caches
      const first = yield* gatedLoad
      const leader = yield* Effect.fork(caches.apiKeys.through("key", first.load))
      yield* until(Effect.sync(() => first.count.loads === 1))
      const second = yield* gatedLoad
      yield* Deferred.succeed(second.gate, Option.some(ORG))
      const joiner = yield* Effect.fork(caches.apiKeys.through("key", second.load))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(leader)
      return { row: yield* Fiber.join(joiner), loads: second.count.loads }
    }),
  )
  expect(result.row).toEqual(Option.some(ORG))
  expect(result.loads).toBe(1)
})

test("after an invalidation a request does not join a load that started before it", async () => {
  const result = await run(
    Effect.gen(function* () {
      const caches = yield* Caches
      const old = yield* gatedLoad
      const before = yield* Effect.fork(caches.apiKeys.through("key", old.load))
      yield* until(Effect.sync(() => old.count.loads === 1))
      caches.invalidate("keys")
      const fresh = yield* gatedLoad
      yield* Deferred.succeed(fresh.gate, Option.none())
      // the key was revoked: the new request reads again and gets no row
      const after = yield* caches.apiKeys.through("key", fresh.load)
      yield* Deferred.succeed(old.gate, Option.some(ORG))
      yield* Fiber.join(before)
      return { after, freshLoads: fresh.count.loads, size: caches.apiKeys.size() }
    }),
  )
  expect(result.after).toEqual(Option.none())
  expect(result.freshLoads).toBe(1)
  // the load that started before the invalidation is not kept either
  expect(result.size).toBe(0)
})
