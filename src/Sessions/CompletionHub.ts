import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Fiber, FiberSet, Layer, Ref, Schedule } from "effect"
import { CACHE_CHANNEL, Caches } from "../Cache.ts"
import { listenOn } from "../Sql/Listen.ts"

const CHANNEL = "parley_session_done"

export interface CompletionHubService {
  /**
   * Registers a waiter on `sessionId` for any number of rounds: register before re-reading the row,
   * so a change between the read and the wait is never missed; release when done.
   */
  readonly register: (sessionId: string) => Effect.Effect<Waiter>
  /** Wakes the waiters of `sessionId` here and, through PostgreSQL NOTIFY, on every other instance. */
  readonly publish: (sessionId: string) => Effect.Effect<void>
  /** Wakes this instance's waiters only. */
  readonly wake: (sessionId: string) => Effect.Effect<void>
  /** Shutdown: wakes every waiter with `closing`, and every later wait answers `closing` at once. */
  readonly close: Effect.Effect<void>
  /** How many requests on this instance are waiting on `sessionId` right now (observability, tests). */
  readonly waiting: (sessionId: string) => Effect.Effect<number>
  /** Whether completions published on other instances reach this one now (its LISTEN is active). */
  readonly listening: Effect.Effect<boolean>
}

/** Why a waiter woke: its session may have changed, or this instance is shutting down. */
export type Wake = "changed" | "closing"

/**
 * One round of waiting on a session; it ends at the session's next wake-up and the next round
 * starts at once. Its identity is what waiters woken together key their one shared re-read on.
 */
export interface Round {
  readonly sessionId: string
}

/** Why a round of waiting ended, and which round it was (for the re-read its waiters share). */
export interface Woken {
  readonly why: Wake | "timeout"
  readonly round: Round
}

/** A registered waiter: it exists (and is counted) until released, across any number of rounds. */
export interface Waiter {
  /**
   * Waits for the end of the round after the last one this waiter saw, or `deadline` (epoch ms on
   * the Clock). Holds no fiber or timer of its own: a callback in the round and an entry in the
   * hub's one deadline list. Answers at once when the wait is already over (`Woken`); otherwise
   * `onWake` is called later, once, unless the returned cancel function is called first.
   */
  readonly listen: (deadline: number, onWake: (woken: Woken) => void) => Effect.Effect<Woken | (() => void)>
  /** Ends its registration (a plain call: waiters are released from callbacks). Idempotent. */
  readonly release: () => void
  /**
   * The round it was registered in. A read started in that same round may stand for its own first
   * read: a change after that read ends this round, which wakes the waiter (see `Sessions.watch`).
   */
  readonly registeredIn: Round
}

type Listener = (why: Wake | "timeout") => void
interface RoundState extends Round {
  ended: Wake | undefined
  readonly listeners: Set<Listener>
}
interface Entry {
  count: number
  round: RoundState
  /** The last round that ended: a waiter that missed its end shares that round's re-read. */
  previous: RoundState | undefined
}
interface Timer {
  readonly at: number
  /** Dropped when cancelled: a cancelled timer waits in the list, and must not keep its waiter alive. */
  fire: () => void
  done: boolean
}

const noop = () => {}

/**
 * Calls one of many callbacks: one that throws (a bug) does not keep the others from being called;
 * its error is thrown again on its own, where the runtime reports it.
 */
export const each = (callback: () => void) => {
  try {
    callback()
  } catch (error) {
    queueMicrotask(() => {
      throw error
    })
  }
}

const newRound = (sessionId: string): RoundState => ({ sessionId, ended: undefined, listeners: new Set() })

/**
 * In-memory waiters. Waiters of one session share its rounds; a wake-up ends the round and calls
 * every waiter's callback. Deadlines live in one sorted list served by one sleeping fiber, so a
 * waiter costs no fibers of its own (Effect.timeout would fork two per wait).
 */
const makeLocal = () => {
  const sessions = new Map<string, Entry>()
  const timers: Array<Timer> = []
  const state = {
    closing: false,
    cancelled: 0,
    sleeper: undefined as { at: number; fiber: Fiber.RuntimeFiber<void> } | undefined,
  }

  const enter = (sessionId: string) => {
    const entry = sessions.get(sessionId) ?? { count: 0, round: newRound(sessionId), previous: undefined }
    entry.count += 1
    sessions.set(sessionId, entry)
    return entry
  }
  const leave = (sessionId: string, entry: Entry) => {
    entry.count -= 1
    if (entry.count === 0 && sessions.get(sessionId) === entry) sessions.delete(sessionId)
  }

  const addTimer = (timer: Timer) => {
    let lo = 0
    let hi = timers.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((timers[mid] as Timer).at <= timer.at) lo = mid + 1
      else hi = mid
    }
    timers.splice(lo, 0, timer)
  }
  const cancelTimer = (timer: Timer) => {
    if (timer.done) return
    timer.done = true
    timer.fire = noop
    state.cancelled += 1
    // Cancelled timers are dropped in bulk once they are half the list (amortised O(1)).
    if (state.cancelled * 2 > timers.length) {
      const live = timers.filter((t) => !t.done)
      timers.splice(0, timers.length, ...live)
      state.cancelled = 0
    }
  }

  /** Makes sure the sleeper wakes by `at`: a new one replaces a later one. */
  const arm = (at: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      const old = state.sleeper
      if (old !== undefined && old.at <= at) return Effect.void
      return Effect.clockWith((clock) =>
        Effect.forkDaemon(
          Effect.zipRight(Effect.sleep(Math.max(0, at - clock.unsafeCurrentTimeMillis())), fireDue),
        ),
      ).pipe(
        Effect.flatMap((fiber) => {
          state.sleeper = { at, fiber }
          return old === undefined ? Effect.void : Fiber.interruptFork(old.fiber)
        }),
      )
    })
  const fireDue: Effect.Effect<void> = Effect.clockWith((clock) =>
    Effect.suspend(() => {
      state.sleeper = undefined
      const now = clock.unsafeCurrentTimeMillis()
      let due = 0
      while (due < timers.length && (timers[due] as Timer).at <= now) due += 1
      for (const timer of timers.splice(0, due)) {
        if (timer.done) state.cancelled -= 1
        else {
          timer.done = true
          each(timer.fire)
        }
      }
      const next = timers.find((t) => !t.done)
      return next === undefined ? Effect.void : arm(next.at)
    }),
  )

  const register = (sessionId: string): Effect.Effect<Waiter> =>
    Effect.sync(() => {
      const entry = enter(sessionId)
      let at = entry.round
      let released = false
      const listen = (deadline: number, onWake: (woken: Woken) => void) =>
        Effect.clockWith((clock): Effect.Effect<Woken | (() => void)> => {
          if (state.closing) return Effect.succeed({ why: "closing", round: at })
          // Its round ended while it was busy: answer at once with the latest ended round.
          if (at.ended !== undefined) {
            const round = entry.previous ?? at
            at = entry.round
            return Effect.succeed({ why: round.ended ?? "changed", round })
          }
          if (deadline <= clock.unsafeCurrentTimeMillis())
            return Effect.succeed({ why: "timeout", round: at })
          const round = at
          // The timer is in the list before the sleeper is armed: a sleeper that fires in between
          // then sees it (and re-arms for it), so no deadline is ever left without one.
          const timer: Timer = { at: deadline, fire: () => listener("timeout"), done: false }
          const listener: Listener = (why) => {
            round.listeners.delete(listener)
            cancelTimer(timer)
            if (why !== "timeout") at = entry.round
            onWake({ why, round })
          }
          round.listeners.add(listener)
          addTimer(timer)
          const cancel = () => {
            round.listeners.delete(listener)
            cancelTimer(timer)
          }
          return Effect.as(arm(deadline), cancel)
        })
      const release = () => {
        if (released) return
        released = true
        leave(sessionId, entry)
      }
      return { listen, release, registeredIn: entry.round }
    })

  const wakeWith = (sessionId: string, why: Wake) =>
    Effect.sync(() => {
      const entry = sessions.get(sessionId)
      if (entry === undefined) return
      const ended = entry.round
      ended.ended = why
      entry.previous = ended
      entry.round = newRound(sessionId)
      for (const listener of [...ended.listeners]) each(() => listener(why))
      ended.listeners.clear()
    })
  const wake = (sessionId: string) => wakeWith(sessionId, "changed")

  const wakeAll = Effect.suspend(() => Effect.forEach([...sessions.keys()], wake, { discard: true }))

  const close = Effect.suspend(() => {
    state.closing = true
    const sleeper = state.sleeper
    state.sleeper = undefined
    return Effect.zipRight(
      Effect.forEach([...sessions.keys()], (id) => wakeWith(id, "closing"), { discard: true }),
      sleeper === undefined ? Effect.void : Fiber.interrupt(sleeper.fiber),
    )
  })

  const count = (sessionId: string) => Effect.sync(() => sessions.get(sessionId)?.count ?? 0)

  return { register, wake, wakeAll, close, waiting: count }
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
      // a single instance's own writes invalidate its caches: nothing to miss
      ;(yield* Caches).resume()
      yield* Effect.addFinalizer(() => local.close)
      // A single instance hears everything it publishes.
      return { ...local, publish: local.wake, listening: Effect.succeed(true) }
    }),
  ).pipe(Layer.provide(Caches.Live))

  /**
   * Fed across instances by LISTEN/NOTIFY on a dedicated connection. When that connection is lost
   * it reconnects and, once LISTEN is active again, wakes every local waiter so each re-reads its
   * row: a NOTIFY sent while it was down is never replayed, so this is what keeps waits exact.
   * On shutdown every waiter is woken and answers with the current state.
   *
   * The same connection carries the cache invalidations (Cache.ts): while it is down the caches are
   * off, and they start empty once LISTEN is active again.
   */
  static readonly Live = Layer.scoped(
    CompletionHub,
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      const caches = yield* Caches
      const scope = yield* Effect.scope
      const local = makeLocal()
      const listening = yield* Ref.make(false)
      yield* Effect.addFinalizer(() => local.close)
      // The LISTEN callback re-enters Effect on this layer's runtime (its logger), in this layer's scope.
      const runFork = yield* FiberSet.makeRuntime()
      const onNotification = (channel: string, payload: string) => {
        if (payload === "") return
        if (channel === CACHE_CHANNEL) caches.invalidate(payload)
        else runFork(local.wake(payload))
      }
      yield* listenOn(pg.config, "parley-listener", [CHANNEL, CACHE_CHANNEL], onNotification).pipe(
        Effect.tap(() =>
          Effect.zipRight(
            Ref.set(listening, true),
            Effect.zipRight(Effect.sync(caches.resume), local.wakeAll),
          ),
        ),
        Effect.flatten,
        Effect.ensuring(Effect.zipRight(Ref.set(listening, false), Effect.sync(caches.suspend))),
        Effect.scoped,
        Effect.tapErrorCause((cause) => Effect.logWarning("completion listener lost; reconnecting", cause)),
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
        Effect.forkScoped,
      )
      // Other instances are told on a fiber of its own (retried a few times: a waiter elsewhere that
      // joined a read from before the change waits for this), and this one's waiters are woken at
      // once; the publisher goes on and answers its own request while their shared read is in flight.
      const publish = (sessionId: string) =>
        Effect.zipRight(
          // PgClient.notify is broken in @effect/sql-pg 0.53.0; pg_notify through a query works.
          pg`SELECT pg_notify(${CHANNEL}, ${sessionId})`.pipe(
            Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.intersect(Schedule.recurs(4)))),
            Effect.catchAll((e) => Effect.logWarning("could not notify other instances", e)),
            Effect.forkIn(scope),
          ),
          local.wake(sessionId),
        )
      return { ...local, publish, listening: Ref.get(listening) }
    }),
  ).pipe(Layer.provide(Caches.Live))
}
