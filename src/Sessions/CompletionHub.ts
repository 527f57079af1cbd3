import { PgClient } from "@effect/sql-pg"
import {
  Context,
  Data,
  Deferred,
  Effect,
  Exit,
  FiberSet,
  Layer,
  Redacted,
  Ref,
  Schedule,
  type Scope,
} from "effect"
import pg from "pg"

const CHANNEL = "parley_session_done"

export interface CompletionHubService {
  /**
   * A signal that fires when `sessionId` may have changed state (completed, failed, expired on any
   * instance, or a resync). Registered in the caller's scope, so it exists before the caller
   * re-reads the row and is removed when the caller stops waiting (timeout or disconnect).
   */
  readonly subscribe: (sessionId: string) => Effect.Effect<Deferred.Deferred<Wake>, never, Scope.Scope>
  /** Wakes the waiters of `sessionId` here and, through PostgreSQL NOTIFY, on every other instance. */
  readonly publish: (sessionId: string) => Effect.Effect<void>
  /** Wakes this instance's waiters only. */
  readonly wake: (sessionId: string) => Effect.Effect<void>
  /** Shutdown: wakes every waiter with `closing`, and every later subscription fires at once. */
  readonly close: Effect.Effect<void>
  /** How many requests on this instance are waiting on `sessionId` right now (observability, tests). */
  readonly waiting: (sessionId: string) => Effect.Effect<number>
  /** Whether completions published on other instances reach this one now (its LISTEN is active). */
  readonly listening: Effect.Effect<boolean>
}

/** Why a waiter woke: its session may have changed, or this instance is shutting down. */
export type Wake = "changed" | "closing"

/** In-memory waiters: one Deferred per waited-on session, shared by everyone waiting on it. */
const makeLocal = () => {
  const waiting = new Map<string, { signal: Deferred.Deferred<Wake>; count: number }>()
  let closing = false

  const subscribe = (sessionId: string) =>
    Effect.acquireRelease(
      Effect.gen(function* () {
        if (closing)
          return {
            signal: yield* Deferred.make<Wake>().pipe(Effect.tap((d) => Deferred.succeed(d, "closing"))),
            count: 1,
          }
        const entry = waiting.get(sessionId) ?? { signal: yield* Deferred.make<Wake>(), count: 0 }
        entry.count += 1
        waiting.set(sessionId, entry)
        return entry
      }),
      (entry) =>
        Effect.sync(() => {
          entry.count -= 1
          if (entry.count === 0 && waiting.get(sessionId) === entry) waiting.delete(sessionId)
        }),
    ).pipe(Effect.map((entry) => entry.signal))

  const wakeWith = (sessionId: string, why: Wake) =>
    Effect.suspend(() => {
      const entry = waiting.get(sessionId)
      if (entry === undefined) return Effect.void
      waiting.delete(sessionId)
      return Deferred.succeed(entry.signal, why)
    })
  const wake = (sessionId: string) => wakeWith(sessionId, "changed")

  const wakeAll = Effect.suspend(() => Effect.forEach([...waiting.keys()], wake, { discard: true }))

  const close = Effect.suspend(() => {
    closing = true
    return Effect.forEach([...waiting.keys()], (id) => wakeWith(id, "closing"), { discard: true })
  })

  const count = (sessionId: string) => Effect.sync(() => waiting.get(sessionId)?.count ?? 0)

  return { subscribe, wake, wakeAll, close, waiting: count }
}

export class CompletionHub extends Context.Tag("Parley/CompletionHub")<
  CompletionHub,
  CompletionHubService
>() {
  /** Single instance, no database: for unit tests. */
  static readonly Local = Layer.scoped(
    CompletionHub,
    Effect.gen(function* () {
      const local = makeLocal()
      yield* Effect.addFinalizer(() => local.close)
      // A single instance hears everything it publishes.
      return { ...local, publish: local.wake, listening: Effect.succeed(true) }
    }),
  )

  /**
   * Fed across instances by LISTEN/NOTIFY on a dedicated connection. When that connection is lost
   * it reconnects and, once LISTEN is active again, wakes every local waiter so each re-reads its
   * row: a NOTIFY sent while it was down is never replayed, so this is what keeps waits exact.
   * On shutdown every waiter is woken and answers with the current state.
   */
  static readonly Live = Layer.scoped(
    CompletionHub,
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      const local = makeLocal()
      const listening = yield* Ref.make(false)
      yield* Effect.addFinalizer(() => local.close)
      // The LISTEN callback re-enters Effect on this layer's runtime (its logger), in this layer's scope.
      const runFork = yield* FiberSet.makeRuntime()
      yield* listen(pg.config, (sessionId) => runFork(local.wake(sessionId))).pipe(
        Effect.tap(() => Effect.zipRight(Ref.set(listening, true), local.wakeAll)),
        Effect.flatten,
        Effect.ensuring(Ref.set(listening, false)),
        Effect.scoped,
        Effect.tapErrorCause((cause) => Effect.logWarning("completion listener lost; reconnecting", cause)),
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
        Effect.forkScoped,
      )
      const publish = (sessionId: string) =>
        Effect.zipRight(
          local.wake(sessionId),
          // PgClient.notify is broken in @effect/sql-pg 0.53.0; pg_notify through a query works.
          pg`SELECT pg_notify(${CHANNEL}, ${sessionId})`.pipe(
            Effect.catchAll((e) => Effect.logWarning("could not notify other instances", e)),
          ),
        )
      return { ...local, publish, listening: Ref.get(listening) }
    }),
  )
}

class ListenerLost extends Data.TaggedError("ListenerLost")<{ readonly cause: unknown }> {}

/** How often the idle LISTEN connection proves it is alive (a silently dropped one sends no event). */
const HEARTBEAT = "30 seconds"

/**
 * Holds a connection that has run LISTEN for the scope and returns an effect that fails when that
 * connection is lost (unlike `PgClient.listen`, whose stream never ends when its connection dies):
 * on an error or end event, or when a heartbeat query does not answer in time.
 */
const listen = (config: PgClient.PgClientConfig, onPayload: (payload: string) => void) =>
  Effect.gen(function* () {
    const lost = yield* Deferred.make<never, ListenerLost>()
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const client = new pg.Client({
            connectionString: config.url ? Redacted.value(config.url) : undefined,
            connectionTimeoutMillis: 5000,
            keepAlive: true,
            application_name: "parley-listener",
          })
          client.on("error", (cause) => Deferred.unsafeDone(lost, Exit.fail(new ListenerLost({ cause }))))
          client.on("end", () =>
            Deferred.unsafeDone(lost, Exit.fail(new ListenerLost({ cause: "connection ended" }))),
          )
          client.on("notification", (message) => {
            if (message.channel === CHANNEL && message.payload) onPayload(message.payload)
          })
          try {
            await client.connect()
            await client.query(`LISTEN ${CHANNEL}`)
            return client
          } catch (cause) {
            await client.end().catch(() => undefined)
            throw cause
          }
        },
        catch: (cause) => new ListenerLost({ cause }),
      }),
      (client) =>
        Effect.promise(() => client.end().catch(() => undefined)).pipe(
          Effect.interruptible, // finalizers are uninterruptible: let the timeout fire
          Effect.timeoutOption(1000),
        ),
    )
    yield* Effect.tryPromise(() => client.query("SELECT 1")).pipe(
      Effect.timeout("5 seconds"),
      Effect.repeat(Schedule.spaced(HEARTBEAT)),
      Effect.catchAll((cause) => Deferred.fail(lost, new ListenerLost({ cause }))),
      Effect.forkScoped,
    )
    return Deferred.await(lost)
  })
