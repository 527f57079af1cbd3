import { SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import pg from "pg"

/**
 * How long a request may wait on the database before it is answered 503 (see `orUnavailable`): a
 * free connection within CONNECT_MS, then each statement within STATEMENT_MS (PostgreSQL cancels it,
 * error 57014), or the driver gives up on an unresponsive server after QUERY_MS. The driver keeps
 * these deadlines, so queries need no timer fibers of their own.
 */
const CONNECT_MS = 4_000
const STATEMENT_MS = 5_000
const QUERY_MS = 6_000

/**
 * The pool. A dead database must surface as SqlError (→ 503) within seconds. Column names are
 * returned as-is (snake_case); timestamptz → Date, int8 → string.
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
