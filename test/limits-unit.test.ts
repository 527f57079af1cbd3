/** The fairness limits on the TestClock (no database, no HTTP): token buckets, windows, the long-poll cap. */
import { describe, expect, test } from "bun:test"
import { Deferred, Effect, Either, Fiber, TestClock, TestContext } from "effect"
import { AppConfig, type AppConfigShape } from "../src/Config.ts"
import { Limits } from "../src/Limits.ts"
import { until } from "./support/wait.ts"

const run = <A, E>(effect: Effect.Effect<A, E, Limits>, config: Partial<AppConfigShape> = {}) =>
  Effect.runPromise(
    effect.pipe(
      Effect.provide(Limits.Live),
      Effect.provide(AppConfig.layer(config)),
      Effect.provide(TestContext.TestContext),
    ),
  )

/** How many of `n` attempts succeed, and the tag of the first failure (if any). */
const attempts = <E extends { _tag: string }>(n: number, attempt: Effect.Effect<void, E>) =>
  Effect.map(Effect.all(Array.from({ length: n }, () => Effect.either(attempt))), (results) => ({
    ok: results.filter(Either.isRight).length,
    refused: results.filter(Either.isLeft).map((r) => r.left._tag),
  }))

describe("request rate per key", () => {
  test("a burst, then one request per 1/rate seconds; keys are independent", () =>
    run(
      Effect.gen(function* () {
        const limits = yield* Limits
        expect(yield* attempts(7, limits.takeRequest("a"))).toEqual({
          ok: 5,
          refused: ["RateLimited", "RateLimited"],
        })
        expect((yield* attempts(1, limits.takeRequest("b"))).ok).toBe(1)
        yield* TestClock.adjust("499 millis")
        expect((yield* attempts(1, limits.takeRequest("a"))).ok).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(yield* attempts(2, limits.takeRequest("a"))).toEqual({ ok: 1, refused: ["RateLimited"] })
        // Idle long enough, the bucket is full again, never fuller.
        yield* TestClock.adjust("1 hour")
        expect((yield* attempts(7, limits.takeRequest("a"))).ok).toBe(5)
      }),
      { requestRatePerKey: 2, requestBurstPerKey: 5 },
    ))
})

describe("failed authentications per address", () => {
  test("past the limit the address is refused until its window passes; others are not", () =>
    run(
      Effect.gen(function* () {
        const limits = yield* Limits
        // While no address is blocked, none is looked up (Bun's requestIP is not free).
        const lookups = { count: 0 }
        const lazy = () => {
          lookups.count++
          return "10.0.0.1"
        }
        yield* limits.checkAddress(lazy)
        expect(lookups.count).toBe(0)
        for (let i = 0; i < 3; i++) {
          yield* limits.checkAddress("10.0.0.1")
          yield* limits.failedAuth("10.0.0.1")
        }
        expect((yield* Effect.either(limits.checkAddress("10.0.0.1")))._tag).toBe("Left")
        expect((yield* Effect.either(limits.checkAddress("10.0.0.2")))._tag).toBe("Right")
        expect((yield* Effect.either(limits.checkAddress(lazy)))._tag).toBe("Left")
        expect(lookups.count).toBe(1)
        yield* TestClock.adjust("59 seconds")
        expect((yield* Effect.either(limits.checkAddress("10.0.0.1")))._tag).toBe("Left")
        yield* TestClock.adjust("1 second")
        expect((yield* Effect.either(limits.checkAddress("10.0.0.1")))._tag).toBe("Right")
        // A new window counts from zero.
        yield* limits.failedAuth("10.0.0.1")
        expect((yield* Effect.either(limits.checkAddress("10.0.0.1")))._tag).toBe("Right")
      }),
      { failedAuthPerAddress: 3 },
    ))
})

describe("concurrent long-polls per key", () => {
  test("the cap refuses one more until a long-poll ends, whatever way it ends", () =>
    run(
      Effect.gen(function* () {
        const limits = yield* Limits
        const release = yield* Deferred.make<void>()
        const first = yield* Effect.fork(limits.longPoll("k", Deferred.await(release)))
        const second = yield* Effect.fork(limits.longPoll("k", Effect.never))
        yield* until(Effect.sync(() => limits.openLongPolls("k") === 2))
        const refused = yield* Effect.either(limits.longPoll("k", Effect.void))
        expect(Either.isLeft(refused) && refused.left._tag).toBe("RateLimited")
        expect(yield* Effect.either(limits.longPoll("other", Effect.void))).toEqual(Either.right(undefined))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(first)
        yield* Fiber.interrupt(second) // a client that went away
        expect(limits.openLongPolls("k")).toBe(0)
        expect(yield* Effect.either(limits.longPoll("k", Effect.succeed(1)))).toEqual(Either.right(1))
      }),
      { maxLongPollsPerKey: 2 },
    ))
})
