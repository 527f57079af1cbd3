/** The lifecycle service alone (no database): detached work, in-flight requests, draining. */
import { expect, test } from "bun:test"
import { Chunk, Deferred, Effect, Fiber, Layer, ManagedRuntime, TestClock, TestContext } from "effect"
import { Lifecycle } from "../src/Lifecycle.ts"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { captureLogs } from "./support/logs.ts"
import { until, wakeOf } from "./support/wait.ts"

const setup = () => {
  const logs = captureLogs()
  const runtime = ManagedRuntime.make(
    Lifecycle.Live.pipe(Layer.provideMerge(CompletionHub.Local), Layer.provide(logs.layer)),
  )
  return { runtime, logs: logs.lines }
}

test("detached work runs to its end when its caller is interrupted, with the caller's log annotations", async () => {
  const { runtime, logs } = setup()
  const finished = await runtime.runPromise(
    Effect.gen(function* () {
      const lifecycle = yield* Lifecycle
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const done = yield* Deferred.make<void>()
      const work = Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(Deferred.await(release)),
        Effect.zipRight(Effect.logWarning("detached work finished")),
        Effect.zipRight(Deferred.succeed(done, undefined)),
      )
      const caller = yield* lifecycle
        .detached(work)
        .pipe(Effect.annotateLogs("request_id", "req_1"), Effect.fork)
      yield* Deferred.await(started)
      yield* Fiber.interrupt(caller)
      // The caller is gone; the work is still running, and the lifecycle is not idle until it ends.
      const idle = yield* Effect.fork(lifecycle.idle)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(idle)
      return yield* Deferred.isDone(done)
    }),
  )
  expect(finished).toBe(true)
  expect(logs().find((line) => line.includes("detached work finished"))).toContain("request_id=req_1")
  await runtime.dispose()
})

test("idle waits for in-flight requests; draining refuses and wakes long-polls with closing", async () => {
  const { runtime } = setup()
  const result = await runtime.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const lifecycle = yield* Lifecycle
        const hub = yield* CompletionHub
        const signal = yield* wakeOf(hub, "session")
        const entered = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const request = yield* lifecycle
          .inFlight(
            Deferred.succeed(entered, undefined).pipe(Effect.zipRight(Deferred.await(release))),
            () => {},
          )
          .pipe(Effect.fork)
        yield* Deferred.await(entered)
        const before = lifecycle.draining()
        yield* lifecycle.beginDraining
        const woke = yield* Fiber.join(signal)
        const idle = yield* Effect.fork(lifecycle.idle)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(idle)
        return { before, after: lifecycle.draining(), woke, request: yield* Fiber.poll(request) }
      }),
    ),
  )
  expect(result).toMatchObject({ before: false, after: true, woke: "closing" })
  expect(result.request._tag).toBe("Some")
  await runtime.dispose()
})

test("drain gives up after 8 s on work that does not end, and closing the lifecycle interrupts it", async () => {
  const { runtime } = setup()
  const interrupted = await runtime.runPromise(
    Effect.gen(function* () {
      const lifecycle = yield* Lifecycle
      const started = yield* Deferred.make<void>()
      const stopped = yield* Deferred.make<void>()
      yield* lifecycle
        .detached(
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(stopped, undefined)),
          ),
        )
        .pipe(Effect.fork)
      yield* Deferred.await(started)
      const drained = yield* Effect.fork(lifecycle.drain)
      yield* until(Effect.map(TestClock.sleeps(), (sleeps) => Chunk.size(sleeps) === 1))
      yield* TestClock.adjust("8 seconds")
      yield* Fiber.join(drained)
      return stopped
    }).pipe(Effect.provide(TestContext.TestContext)),
  )
  await runtime.dispose()
  expect(await Effect.runPromise(Deferred.isDone(interrupted))).toBe(true)
})
