/** The completion hub across instances: two hubs (two pools) on one database, LISTEN/NOTIFY between them. */
import { expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber, Layer, ManagedRuntime, Option } from "effect"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { sqlLayerFor, testDatabaseUrl } from "./support/db.ts"
import { captureLogs } from "./support/logs.ts"
import { until, wakeOf } from "./support/wait.ts"

const listening = Effect.flatMap(CompletionHub, (hub) => hub.listening)

/** One instance's hub, once its LISTEN is active; what it logs is kept in `logs`. */
const instance = async () => {
  const logs = captureLogs()
  const runtime = ManagedRuntime.make(
    CompletionHub.Live.pipe(
      Layer.provideMerge(sqlLayerFor(await testDatabaseUrl())),
      Layer.provide(logs.layer),
    ),
  )
  await runtime.runPromise(until(listening))
  return Object.assign(runtime, { logs: logs.lines })
}

type Instance = Awaited<ReturnType<typeof instance>>

const publishOn = (instance: Instance, sessionId: string) =>
  Effect.promise(() => instance.runPromise(Effect.flatMap(CompletionHub, (hub) => hub.publish(sessionId))))

// No wait below has a timeout of its own: a wake-up that never comes fails the test on its timeout.

test("a completion published on one instance wakes a waiter on another, and only that one", async () => {
  const [a, b] = await Promise.all([instance(), instance()])
  const id = crypto.randomUUID()
  const other = crypto.randomUUID()
  const result = await b.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const hub = yield* CompletionHub
        const onId = yield* wakeOf(hub, id)
        const onOther = yield* wakeOf(hub, other)
        yield* publishOn(a, other)
        const otherWoke = yield* Fiber.join(onOther)
        // NOTIFYs arrive in order: `other`'s has been handled here, and it woke nobody else.
        const idWokeEarly = Option.isSome(yield* Fiber.poll(onId))
        yield* publishOn(a, id)
        return { otherWoke, idWokeEarly, idWoke: yield* Fiber.join(onId) }
      }),
    ),
  )
  expect(result).toEqual({ otherWoke: "changed", idWokeEarly: false, idWoke: "changed" })
  await Promise.all([a.dispose(), b.dispose()])
})

test("a lost listener connection wakes local waiters and reconnects", async () => {
  const [a, b] = await Promise.all([instance(), instance()])
  const id = crypto.randomUUID()
  const killListeners = Effect.promise(() =>
    a.runPromise(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) =>
          sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'parley-listener'`,
      ),
    ),
  )
  // The waiter is woken to re-read (a NOTIFY sent while the listener was down would be lost)...
  const lost = await b.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const signal = yield* wakeOf(yield* CompletionHub, id)
        yield* killListeners
        return yield* Fiber.join(signal)
      }),
    ),
  )
  expect(lost).toBe("changed")
  expect(b.logs().some((line) => line.includes("completion listener lost; reconnecting"))).toBe(true)
  // ...and cross-instance wake-ups work again once B listens again.
  const again = crypto.randomUUID()
  const woke = await b.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        yield* until(listening)
        const signal = yield* wakeOf(yield* CompletionHub, again)
        yield* publishOn(a, again)
        return yield* Fiber.join(signal)
      }),
    ),
  )
  expect(woke).toBe("changed")
  await Promise.all([a.dispose(), b.dispose()])
})
