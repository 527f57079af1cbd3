/** The completion hub across instances: two hubs (two pools) on one database, LISTEN/NOTIFY between them. */
import { expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Layer, ManagedRuntime, Option } from "effect"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { sqlLayerFor, testDatabaseUrl } from "./support/db.ts"

const instance = async () => {
  const runtime = ManagedRuntime.make(
    CompletionHub.Live.pipe(Layer.provideMerge(sqlLayerFor(await testDatabaseUrl()))),
  )
  await runtime.runPromise(Effect.sleep("200 millis")) // let the listener connect
  return runtime
}

/** Subscribes on `hub`, runs `trigger`, and reports whether the signal fired within `ms`. */
const firesWithin = (ms: number, sessionId: string, trigger: Effect.Effect<void>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const signal = yield* (yield* CompletionHub).subscribe(sessionId)
      yield* trigger
      return Option.isSome(yield* Deferred.await(signal).pipe(Effect.timeout(ms), Effect.option))
    }),
  )

test("a completion published on one instance wakes a waiter on another", async () => {
  const [a, b] = await Promise.all([instance(), instance()])
  const id = crypto.randomUUID()
  const publishOnA = Effect.promise(() =>
    a.runPromise(Effect.flatMap(CompletionHub, (hub) => hub.publish(id))),
  )
  expect(await b.runPromise(firesWithin(2000, id, publishOnA))).toBe(true)
  const other = crypto.randomUUID()
  const publishOther = Effect.promise(() =>
    a.runPromise(Effect.flatMap(CompletionHub, (hub) => hub.publish(other))),
  )
  expect(await b.runPromise(firesWithin(300, id, publishOther))).toBe(false)
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
  ).pipe(Effect.asVoid)
  // The waiter is woken to re-read (a NOTIFY sent while the listener was down would be lost)...
  expect(await b.runPromise(firesWithin(3000, id, killListeners))).toBe(true)
  // ...and cross-instance wake-ups work again after the reconnect.
  await b.runPromise(Effect.sleep("1500 millis"))
  const again = crypto.randomUUID()
  const publish = Effect.promise(() =>
    a.runPromise(Effect.flatMap(CompletionHub, (hub) => hub.publish(again))),
  )
  expect(await b.runPromise(firesWithin(2000, again, publish))).toBe(true)
  await Promise.all([a.dispose(), b.dispose()])
})
