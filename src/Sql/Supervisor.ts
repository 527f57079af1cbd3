/**
 * Keeps the embedded PostgreSQL running while the server does: a postmaster that exits (a crash,
 * the OOM killer, a stray kill -9) is started again on the same data directory and port.
 */
import { Effect, Schedule, type Scope } from "effect"
import {
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
  postmasterRuns,
  restartEmbeddedPostgres,
} from "./EmbeddedPostgres.ts"

/** How often the postmaster's pid is looked at (a signal 0 and a /proc read): cheap enough for every second. */
const CHECK_EVERY = "1 second"

/** Failed restarts are retried sooner at first, then every few seconds for as long as it takes. */
const RESTART_BACKOFF = Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("3 seconds")))

/**
 * Watches `pg` for the life of the scope and restarts it when it exits. Meanwhile every query fails
 * at once (connection refused: 503) and /readyz answers 503; the pool connects again by itself
 * once the same port answers. Forked into the scope after the cluster's own stop, so the watch
 * ends first: a restart it interrupts leaves its postmaster where that stop finds it.
 */
export const superviseEmbeddedPostgres = (
  pg: EmbeddedPostgres,
  options: EmbeddedPostgresOptions,
): Effect.Effect<void, never, Scope.Scope> => {
  let pid = pg.pid
  const exited = Effect.sync(() => postmasterRuns(pid, pg.dir)).pipe(
    Effect.repeat({ while: (runs) => runs, schedule: Schedule.spaced(CHECK_EVERY) }),
  )
  const restart = restartEmbeddedPostgres(pg, options).pipe(
    Effect.tapError((e) => Effect.logWarning(`embedded PostgreSQL did not restart; retrying: ${e.message}`)),
    Effect.retry(RESTART_BACKOFF),
  )
  const watch = Effect.gen(function* () {
    yield* exited
    yield* Effect.logWarning(`embedded PostgreSQL (pid ${pid}) exited; restarting it in ${pg.dir}`)
    pid = (yield* restart).pid
    yield* Effect.logWarning(`embedded PostgreSQL running again (pid ${pid}) on 127.0.0.1:${pg.port}`)
  })
  return Effect.asVoid(Effect.forkScoped(Effect.forever(watch)))
}
