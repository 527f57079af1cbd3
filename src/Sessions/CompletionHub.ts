import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Effect, Layer, Schedule, type Scope, Stream } from "effect"

const CHANNEL = "parley_session_done"

export interface CompletionHubService {
  /**
   * A signal that fires when `sessionId` may have changed state (completed, failed, expired on any
   * instance, or a resync). Registered in the caller's scope, so it exists before the caller
   * re-reads the row and is removed when the caller stops waiting (timeout or disconnect).
   */
  readonly subscribe: (sessionId: string) => Effect.Effect<Deferred.Deferred<void>, never, Scope.Scope>
  /** Wakes the waiters of `sessionId` here and, through PostgreSQL NOTIFY, on every other instance. */
  readonly publish: (sessionId: string) => Effect.Effect<void>
  /** Wakes this instance's waiters only. */
  readonly wake: (sessionId: string) => Effect.Effect<void>
}

/** In-memory waiters: one Deferred per waited-on session, shared by everyone waiting on it. */
const makeLocal = () => {
  const waiting = new Map<string, { signal: Deferred.Deferred<void>; count: number }>()

  const subscribe = (sessionId: string) =>
    Effect.acquireRelease(
      Effect.gen(function* () {
        const entry = waiting.get(sessionId) ?? { signal: yield* Deferred.make<void>(), count: 0 }
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

  const wake = (sessionId: string) =>
    Effect.suspend(() => {
      const entry = waiting.get(sessionId)
      if (entry === undefined) return Effect.void
      waiting.delete(sessionId)
      return Deferred.succeed(entry.signal, undefined)
    })

  const wakeAll = Effect.suspend(() => Effect.forEach([...waiting.keys()], wake, { discard: true }))

  return { subscribe, wake, wakeAll }
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
      yield* Effect.addFinalizer(() => local.wakeAll)
      return { subscribe: local.subscribe, wake: local.wake, publish: local.wake }
    }),
  )

  /**
   * Fed across instances by LISTEN/NOTIFY. The listener holds a dedicated connection; when it is
   * lost it reconnects and wakes every local waiter so they re-read (a NOTIFY sent while it was
   * down is not replayed). On shutdown every waiter is woken and answers with the current state.
   */
  static readonly Live = Layer.scoped(
    CompletionHub,
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      const local = makeLocal()
      yield* Effect.addFinalizer(() => local.wakeAll)
      yield* pg.listen(CHANNEL).pipe(
        Stream.runForEach(local.wake),
        Effect.tapErrorCause((cause) =>
          Effect.zipRight(Effect.logWarning("completion listener lost; reconnecting", cause), local.wakeAll),
        ),
        Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
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
      return { subscribe: local.subscribe, wake: local.wake, publish }
    }),
  )
}
