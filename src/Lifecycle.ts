import { Context, Effect, Fiber, FiberSet, Layer } from "effect"
import { CompletionHub } from "./Sessions/CompletionHub.ts"

/** How long shutdown waits for in-flight requests and detached work before the server closes anyway. */
const DRAIN_TIMEOUT = "8 seconds"

/** A request in flight without a fiber of its own (a parked long-poll). */
export interface Held {
  /** Shutdown's time is up: answer now. */
  readonly cutOff: () => void
}

export interface LifecycleService {
  /**
   * Runs `self` on a fiber of its own and waits for it. A caller that is interrupted (the client
   * disconnects) only stops waiting: the work runs to its end — no room without a row, no claimed
   * session left `completing` — and, unlike under `Effect.uninterruptible` (whose interruption also
   * reaches every child fiber, and which keeps `Effect.timeout` from interrupting anything), every
   * upstream timeout inside it still fires. Shutdown waits for it.
   */
  readonly detached: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Counts the current fiber (a request) as in flight until it ends; shutdown waits for it, and if it
   * is still running when the drain's time is up, `cutOff` answers it (before it is interrupted).
   */
  readonly inFlight: <A, E, R>(self: Effect.Effect<A, E, R>, cutOff: () => void) => Effect.Effect<A, E, R>
  /**
   * Counts a request that waits without a fiber (a parked long-poll) as in flight until `unhold`,
   * like `inFlight`; shutdown's cut-off calls its `cutOff`.
   */
  readonly hold: (held: Held) => void
  readonly unhold: (held: Held) => void
  /** Answers every request still in flight (as `inFlight` was told to); they are interrupted next. */
  readonly cutOff: Effect.Effect<void>
  /** Whether shutdown has begun: new requests are refused with 503 so load balancers move on. */
  readonly draining: () => boolean
  /** Shutdown, first step: refuse new requests and answer pending long-polls with their state now. */
  readonly beginDraining: Effect.Effect<void>
  /** Succeeds once no request is in flight and no detached work runs. */
  readonly idle: Effect.Effect<void>
  /** Shutdown: `beginDraining`, then `idle` for at most 8 s. */
  readonly drain: Effect.Effect<void>
}

/**
 * The requests in flight, each with how to cut it off: request fibers (a plain map and the fiber's
 * own exit observer: a FiberSet costs a request ~10 % of its CPU on the hot read path), interrupted
 * when the scope closes, and held requests without a fiber.
 */
const requestSet = Effect.gen(function* () {
  const requests = new Map<object, Held | (() => void)>()
  const idle = new Set<() => void>()
  yield* Effect.addFinalizer(() =>
    Fiber.interruptAll(
      [...requests.keys()].filter(
        (key): key is Fiber.RuntimeFiber<unknown, unknown> => Fiber.isFiber(key) && Fiber.isRuntimeFiber(key),
      ),
    ),
  )
  const remove = (key: object) => {
    if (!requests.delete(key) || requests.size > 0) return
    for (const wake of idle) wake()
    idle.clear()
  }
  return {
    add: (fiber: Fiber.RuntimeFiber<unknown, unknown>, cutOff: () => void) => {
      requests.set(fiber, cutOff)
      fiber.addObserver(() => remove(fiber))
    },
    hold: (held: Held) => void requests.set(held, held),
    unhold: remove,
    cutOff: Effect.sync(() => {
      for (const cut of [...requests.values()]) {
        if (typeof cut === "function") cut()
        else cut.cutOff()
      }
    }),
    awaitEmpty: Effect.async<void>((resume) => {
      if (requests.size === 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      idle.add(wake)
      return Effect.sync(() => void idle.delete(wake))
    }),
  }
})

const make = Effect.gen(function* () {
  const hub = yield* CompletionHub
  // Closing the layer's scope interrupts whatever is left of either (after the drain's timeout).
  const requests = yield* requestSet
  const work = yield* FiberSet.make()
  const state = { draining: false }

  const beginDraining = Effect.zipRight(
    Effect.sync(() => {
      state.draining = true
    }),
    hub.close,
  )
  // Requests first: the detached work of a request whose client has gone is in `work` by then.
  const idle = Effect.zipRight(requests.awaitEmpty, FiberSet.awaitEmpty(work))

  const service: LifecycleService = {
    detached: (self) => Effect.flatMap(FiberSet.run(work, self), Fiber.join),
    inFlight: (self, cutOff) =>
      Effect.withFiberRuntime((fiber) => {
        requests.add(fiber, cutOff)
        return self
      }),
    hold: requests.hold,
    unhold: requests.unhold,
    cutOff: requests.cutOff,
    draining: () => state.draining,
    beginDraining,
    idle,
    drain: beginDraining.pipe(
      Effect.zipRight(idle),
      Effect.interruptible, // run from a finalizer, which is uninterruptible: let the timeout fire
      Effect.timeout(DRAIN_TIMEOUT),
      // time is up: what is still running is answered now, rather than with an empty response later
      Effect.catchTag("TimeoutException", () => requests.cutOff),
    ),
  }
  return service
})

/**
 * The server's lifecycle: which requests and background work are running, and whether it is shutting
 * down. One per server (never module state), so two servers in one process share nothing.
 */
export class Lifecycle extends Context.Tag("Parley/Lifecycle")<Lifecycle, LifecycleService>() {
  static readonly Live = Layer.scoped(Lifecycle, make)
}
