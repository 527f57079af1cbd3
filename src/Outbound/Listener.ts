/**
 * The dispatchers' wake-up call: LISTEN on a connection of its own that notices when it is lost (an
 * error or end event, or a heartbeat that goes unanswered) and is then opened again. PgClient.listen
 * would do, but its stream never ends when its connection dies (see Sessions/CompletionHub.ts, which
 * holds the same kind of connection for completions and caches).
 */
import type { PgClient } from "@effect/sql-pg"
import { Data, Deferred, Effect, Exit, Redacted, Schedule } from "effect"
import pg from "pg"

class ListenerLost extends Data.TaggedError("ListenerLost")<{ readonly cause: unknown }> {}

const HEARTBEAT = "30 seconds"

/** One connection's life: LISTEN, then an effect that fails once the connection is lost. */
const connection = (config: PgClient.PgClientConfig, channel: string, onNotify: () => void) =>
  Effect.gen(function* () {
    const lost = yield* Deferred.make<never, ListenerLost>()
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const client = new pg.Client({
            connectionString: config.url ? Redacted.value(config.url) : undefined,
            connectionTimeoutMillis: 5000,
            keepAlive: true,
            application_name: "parley-outbound",
          })
          const fail = (cause: unknown) => Deferred.unsafeDone(lost, Exit.fail(new ListenerLost({ cause })))
          client.on("error", fail)
          client.on("end", () => fail("connection ended"))
          client.on("notification", onNotify)
          try {
            await client.connect()
            await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
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

/**
 * Calls `onNotify` for every NOTIFY on `channel`, and once each time LISTEN is (again) active: what
 * was sent while it was down is never replayed, so the caller looks for work then. Runs until
 * interrupted; a lost connection is logged and opened again.
 */
export const listenForever = (config: PgClient.PgClientConfig, channel: string, onNotify: () => void) =>
  connection(config, channel, onNotify).pipe(
    Effect.tap(() => Effect.sync(onNotify)),
    Effect.flatten,
    Effect.scoped,
    Effect.tapErrorCause((cause) => Effect.logWarning("outbound webhook listener lost; reconnecting", cause)),
    Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
  )
