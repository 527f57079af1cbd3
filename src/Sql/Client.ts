import type { SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, type Redacted } from "effect"

/**
 * The pool. A dead database must surface as SqlError (→ 503) within seconds. Column names are
 * returned as-is (snake_case); timestamptz → Date, int8 → string.
 */
export const pgClientLayer = (url: Redacted.Redacted) =>
  PgClient.layer({
    url,
    maxConnections: 10,
    idleTimeout: "30 seconds",
    connectTimeout: "5 seconds",
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
