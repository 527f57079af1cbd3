/**
 * The idempotency service over its in-memory repository on a TestClock (no database, no HTTP): how long
 * a retry waits, the lease of a running request, abandoned keys, expiry.
 */
import { describe, expect, test } from "bun:test"
import { HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Fiber, FiberRef, Layer, Option, TestClock, TestContext } from "effect"
import { Caches } from "../src/Cache.ts"
import { IdempotencyKeyInUse, ServiceUnavailable } from "../src/Domain/Errors.ts"
import { RETENTION_SECONDS, WAIT_SECONDS } from "../src/Idempotency/Key.ts"
import { IdempotencyRepo } from "../src/Idempotency/Repo.ts"
import { Idempotency, LEASE_SECONDS } from "../src/Idempotency.ts"
import { Lifecycle } from "../src/Lifecycle.ts"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { captureLogs } from "./support/logs.ts"
import { until } from "./support/wait.ts"

const layer = Idempotency.Test.pipe(
  Layer.provideMerge(Lifecycle.Live),
  Layer.provide(CompletionHub.Local),
  Layer.provide(Caches.Live),
  Layer.provide(captureLogs().layer),
)

const run = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof layer>>) =>
  Effect.runPromise(
    Effect.scoped(effect).pipe(Effect.provide(layer), Effect.provide(TestContext.TestContext)),
  )

const request = (key: string) => ({ orgId: "org", key, method: "POST", path: "/p", body_hash: "h" })

/** A handler that counts its runs and answers 201 after `ms` on the clock. */
const handler = (ms: number) => {
  const counter = { runs: 0 }
  const served = Effect.sync(() => ++counter.runs).pipe(
    Effect.zipLeft(Effect.sleep(ms)),
    Effect.map((n) => HttpServerResponse.unsafeJson({ n }, { status: 201 })),
  )
  return { counter, served }
}

const replayed = (response: HttpServerResponse.HttpServerResponse) => response.headers["idempotent-replayed"]

describe("a retry while the first request runs", () => {
  test(`waits ${WAIT_SECONDS} s, then is 409 in_use; the running request keeps its key past its lease`, () =>
    run(
      Effect.gen(function* () {
        const idempotency = yield* Idempotency
        const { counter, served } = handler(60_000)
        const first = yield* Effect.fork(idempotency.run(request("k"), served))
        yield* until(Effect.sync(() => counter.runs === 1))
        const retry = yield* Effect.fork(Effect.either(idempotency.run(request("k"), served)))
        yield* until(Effect.map(idempotency.waiting, (n) => n === 1))
        yield* TestClock.adjust(`${WAIT_SECONDS + 1} seconds`)
        const refused = yield* Fiber.join(retry)
        expect(Either.isLeft(refused) && refused.left instanceof IdempotencyKeyInUse).toBe(true)
        // its answer will carry Retry-After (a handler of the request fiber, joined back with it)
        const onResponse = yield* FiberRef.get(HttpApp.currentPreResponseHandlers)
        const sent = yield* Option.getOrThrow(onResponse)(
          HttpServerRequest.fromWeb(new Request("http://localhost/p")),
          HttpServerResponse.empty({ status: 409 }),
        )
        expect(sent.headers["retry-after"]).toBe("1")
        // past LEASE_SECONDS: the heartbeat kept the key, nobody ran the handler again
        expect(WAIT_SECONDS).toBeGreaterThan(LEASE_SECONDS)
        expect(counter.runs).toBe(1)
        yield* TestClock.adjust("30 seconds")
        const answer = yield* Fiber.join(first)
        expect(replayed(answer)).toBeUndefined()
        const again = yield* idempotency.run(request("k"), served)
        expect(replayed(again)).toBe("true")
        expect(counter.runs).toBe(1)
      }),
    ))

  test("of an instance that died takes the key over once the lease has lapsed", () =>
    run(
      Effect.gen(function* () {
        const idempotency = yield* Idempotency
        const repo = yield* IdempotencyRepo
        // what a crashed instance leaves: the key taken, never renewed, no response
        const taken = yield* repo.begin({
          ...request("k"),
          token: "dead",
          leaseSeconds: LEASE_SECONDS,
          retentionSeconds: RETENTION_SECONDS,
        })
        expect(Option.isSome(taken)).toBe(true)
        const { counter, served } = handler(0)
        const retry = yield* Effect.fork(idempotency.run(request("k"), served))
        yield* until(Effect.map(idempotency.waiting, (n) => n === 1))
        yield* TestClock.adjust(`${LEASE_SECONDS - 1} seconds`)
        expect(counter.runs).toBe(0)
        yield* TestClock.adjust("2 seconds")
        const answer = yield* Fiber.join(retry)
        expect(answer.status).toBe(201)
        expect(replayed(answer)).toBeUndefined()
        expect(counter.runs).toBe(1)
      }),
    ))
})

test("a key is kept 24 h from its first request, then purged", () =>
  run(
    Effect.gen(function* () {
      const idempotency = yield* Idempotency
      const repo = yield* IdempotencyRepo
      const { counter, served } = handler(0)
      yield* idempotency.run(request("old"), served)
      yield* TestClock.adjust("12 hours")
      yield* idempotency.run(request("new"), served)
      expect(replayed(yield* idempotency.run(request("old"), served))).toBe("true")
      yield* TestClock.adjust(`${RETENTION_SECONDS - 12 * 3600} seconds`)
      // the layer's own purge has run meanwhile (every 10 minutes)
      expect(Option.isNone(yield* repo.find({ orgId: "org", key: "old" }))).toBe(true)
      expect(yield* idempotency.purge).toBe(0)
      expect(replayed(yield* idempotency.run(request("new"), served))).toBe("true")
      expect(counter.runs).toBe(2)
    }),
  ))

test("a response the database could not take at once is stored once it is back, before the answer", async () => {
  const failures = { left: 2 }
  const flaky = Layer.effect(
    IdempotencyRepo,
    Effect.map(IdempotencyRepo, (repo) => ({
      ...repo,
      store: (input: Parameters<typeof repo.store>[0]) =>
        Effect.suspend(() =>
          failures.left-- > 0
            ? Effect.fail(new ServiceUnavailable({ message: "The database is unavailable; retry later." }))
            : repo.store(input),
        ),
    })),
  ).pipe(Layer.provide(IdempotencyRepo.Test))
  const logs = captureLogs()
  const flakyLayer = Idempotency.layer.pipe(
    Layer.provideMerge(flaky),
    Layer.provideMerge(Lifecycle.Live),
    Layer.provide(CompletionHub.Local),
    Layer.provide(Caches.Live),
    Layer.provide(logs.layer),
  )
  await Effect.runPromise(
    Effect.gen(function* () {
      const idempotency = yield* Idempotency
      const { counter, served } = handler(0)
      const first = yield* Effect.fork(idempotency.run(request("k"), served))
      // the retries back off on the clock: a second at a time until the third try
      yield* until(
        Effect.zipRight(
          TestClock.adjust("1 second"),
          Effect.sync(() => failures.left < 0),
        ),
      )
      const answer = yield* Fiber.join(first)
      expect(answer.status).toBe(201)
      expect(replayed(yield* idempotency.run(request("k"), served))).toBe("true")
      expect(counter.runs).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(flakyLayer), Effect.provide(TestContext.TestContext)),
  )
  expect(logs.lines().filter((l) => l.includes("could not store an idempotent response"))).toHaveLength(2)
})
