/**
 * Waiting on conditions, never on time: each helper re-checks a few ms of real time apart until the
 * condition holds, and has no deadline of its own (bun's per-test timeout bounds every wait).
 */
import { Clock, Deferred, Effect, Exit } from "effect"
import type { CompletionHubService, Woken } from "../../src/Sessions/CompletionHub.ts"

const POLL_MS = 5

/** Resolves once `check` holds. */
export const eventually = async (check: () => Promise<boolean> | boolean): Promise<void> => {
  while (!(await check())) await Bun.sleep(POLL_MS)
}

/** Succeeds once `check` yields true; the pause between tries is real time even under a TestClock. */
export const until = <E, R>(check: Effect.Effect<boolean, E, R>): Effect.Effect<void, E, R> =>
  Effect.flatMap(check, (ok) =>
    ok
      ? Effect.void
      : Effect.zipRight(
          Effect.promise(() => Bun.sleep(POLL_MS)),
          until(check),
        ),
  )

/**
 * A waiter on `sessionId`, registered now (released with the scope), waiting in a fiber of its own:
 * joined, it gives why it woke. Its deadline is an hour away, so only a wake-up ends it in a test.
 */
export const wakeOf = (hub: CompletionHubService, sessionId: string) =>
  Effect.gen(function* () {
    const waiter = yield* Effect.acquireRelease(hub.register(sessionId), (w) => Effect.sync(w.release))
    const now = yield* Clock.currentTimeMillis
    const woken = yield* Deferred.make<Woken>()
    const listening = yield* waiter.listen(now + 3_600_000, (w) =>
      Deferred.unsafeDone(woken, Exit.succeed(w)),
    )
    if (typeof listening !== "function") yield* Deferred.succeed(woken, listening)
    return yield* Effect.fork(Effect.map(Deferred.await(woken), ({ why }) => why))
  })
