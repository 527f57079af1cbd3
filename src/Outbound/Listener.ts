/**
 * The dispatchers' wake-up call: LISTEN on a connection of its own (Sql/Listen.ts), opened again
 * whenever it is lost.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Schedule } from "effect"
import { listenOn } from "../Sql/Listen.ts"

/**
 * Calls `onNotify` for every NOTIFY on `channel`, and once each time LISTEN is (again) active: what
 * was sent while it was down is never replayed, so the caller looks for work then. Runs until
 * interrupted; a lost connection is logged and opened again.
 */
export const listenForever = (config: PgClient.PgClientConfig, channel: string, onNotify: () => void) =>
  listenOn(config, "parley-outbound", [channel], onNotify).pipe(
    Effect.tap(() => Effect.sync(onNotify)),
    Effect.flatten,
    Effect.scoped,
    Effect.tapErrorCause((cause) => Effect.logWarning("outbound webhook listener lost; reconnecting", cause)),
    Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
  )
