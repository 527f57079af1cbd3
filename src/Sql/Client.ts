import { SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import pg from "pg"

/**
 * How long a request may wait on the database before it is answered 503 (see `orUnavailable`): a
 * connection from the pool within CONNECT_MS (waiting for a free one and opening a new one both
 * count), then each statement within STATEMENT_MS (PostgreSQL cancels it, error 57014), or the driver
 * gives up on a server that does not answer at all after QUERY_MS. A hung database is therefore
 * answered within CONNECT_MS + QUERY_MS = 9 s, under the 10 s the README promises. The driver keeps
 * these deadlines, so queries need no timer fibers of their own.
 */
export const CONNECT_MS = 3_000
export const STATEMENT_MS = 5_000
export const QUERY_MS = 6_000

/** Whether the driver still waits for the answer to a query sent on `client`. pg has no public
 * accessor for it (pg-pool, too, reads the client's private `_queryable` and `_ending`); should a
 * pg upgrade drop the method, nothing is closed and test/hung-db.test.ts fails. */
const awaitsAnswer = (client: object): boolean =>
  "_getActiveQuery" in client &&
  typeof client._getActiveQuery === "function" &&
  client._getActiveQuery() != null

/**
 * The pool. A dead database must surface as SqlError (→ 503) within seconds. Column names are
 * returned as-is (snake_case); timestamptz → Date, int8 → string.
 *
 * A connection handed back while its query is still unanswered (the driver gave up after QUERY_MS,
 * or the query was interrupted) is closed rather than kept: the next query on it would wait behind
 * the unanswered one, and a connection to a server that stopped answering may never answer again.
 */
export const pgClientLayer = (url: Redacted.Redacted) =>
  PgClient.layerFromPool({
    acquire: Effect.acquireRelease(
      Effect.suspend(() => {
        const pool = new pg.Pool({
          connectionString: Redacted.value(url),
          max: 10,
          idleTimeoutMillis: 30_000,
          connectionTimeoutMillis: CONNECT_MS,
          statement_timeout: STATEMENT_MS,
          query_timeout: QUERY_MS,
          application_name: "parley",
        })
        pool.on("error", () => {}) // an idle connection lost: the next query reports it
        // Emitted before the pool decides to keep the client; an ending client is dropped.
        pool.on("release", (_error, client) => {
          if (awaitsAnswer(client)) void client.end().catch(() => undefined)
        })
        return Effect.tryPromise({
          try: () => pool.query("SELECT 1"),
          catch: (cause) => new SqlError.SqlError({ cause, message: "PgClient: Failed to connect" }),
        }).pipe(
          Effect.as(pool),
          Effect.tapError(() => Effect.promise(() => pool.end().catch(() => undefined))),
        )
      }),
      (pool) =>
        Effect.promise(() => pool.end()).pipe(
          Effect.interruptible, // finalizers are uninterruptible: let the timeout fire
          Effect.timeoutOption(1000),
        ),
    ),
    applicationName: "parley",
  })

/** Creates `name` unless pg_database already has it (CREATE DATABASE has no IF NOT EXISTS). */
export const ensureDatabase = (
  adminUrl: Redacted.Redacted,
  name: string,
): Effect.Effect<void, SqlError.SqlError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const sql = Context.get(
        yield* Layer.build(PgClient.layer({ url: adminUrl, maxConnections: 1 })),
        PgClient.PgClient,
      )
      const rows = yield* sql`SELECT 1 FROM pg_database WHERE datname = ${name}`
      if (rows.length === 0) yield* sql`CREATE DATABASE ${sql(name)}`
    }),
  )
