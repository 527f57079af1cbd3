/**
 * Waiting on conditions, never on time: each helper re-checks a few ms of real time apart until the
 * condition holds, and has no deadline of its own (bun's per-test timeout bounds every wait).
 */
import { Effect } from "effect"

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
