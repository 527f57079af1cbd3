/**
 * A LISTEN connection that notices when it is lost. `PgClient.listen` holds one too, but its stream
 * never ends when its connection dies; this one ends on an error or end event, or when a heartbeat
 * query goes unanswered, so its owner can open it again (and look for what it missed meanwhile).
 */
import type { PgClient } from "@effect/sql-pg"
import { Data, Deferred, Effect, Exit, Redacted, Schedule } from "effect"
import pg from "pg"

export class ListenerLost extends Data.TaggedError("ListenerLost")<{ readonly cause: unknown }> {}

/** How often the idle connection proves it is alive (a silently dropped one sends no event). */
const HEARTBEAT = "30 seconds"

/**
 * Holds a connection that has run LISTEN on `channels` for the scope, calling `onNotification` for
 * each NOTIFY, and returns an effect that fails once the connection is lost.
 */
export const listenOn = (
  config: PgClient.PgClientConfig,
  applicationName: string,
  channels: ReadonlyArray<string>,
  onNotification: (channel: string, payload: string) => void,
) =>
  Effect.gen(function* () {
    const lost = yield* Deferred.make<never, ListenerLost>()
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const client = new pg.Client({
            connectionString: config.url ? Redacted.value(config.url) : undefined,
            connectionTimeoutMillis: 5000,
            keepAlive: true,
            application_name: applicationName,
          })
          const fail = (cause: unknown) => Deferred.unsafeDone(lost, Exit.fail(new ListenerLost({ cause })))
          client.on("error", fail)
          client.on("end", () => fail("connection ended"))
          client.on("notification", (message) => onNotification(message.channel, message.payload ?? ""))
          try {
            await client.connect()
            await client.query(channels.map((channel) => `LISTEN ${pg.escapeIdentifier(channel)}`).join("; "))
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
