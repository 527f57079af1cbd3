import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { BunContext } from "@effect/platform-bun"
import { SqlClient, type SqlError, SqlSchema } from "@effect/sql"
import type { MigrationError } from "@effect/sql/Migrator"
import { PgMigrator } from "@effect/sql-pg"
import { Effect, Schema } from "effect"

// Two levels up from this file, and from the bundle `npm start` runs (dist/server/main.js).
const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url))
const MIGRATIONS_TABLE = "effect_sql_migrations"
/** Arbitrary constant: every instance takes this transaction-scoped lock before migrating. */
const MIGRATION_LOCK_KEY = 7_744_110_001
const migrationIds = readdirSync(MIGRATIONS_DIR).flatMap((f) => /^(\d+)_[^.]+\.(js|ts)$/.exec(f)?.[1] ?? [])
export const LATEST_MIGRATION_ID = Math.max(0, ...migrationIds.map(Number))

/** Concurrent starters serialise on an advisory lock; the migrations table is created under that
 * lock because the Migrator's own check-then-create races and, inside a transaction, its failing
 * probe query would abort the transaction. */
export const migrate: Effect.Effect<
  ReadonlyArray<readonly [number, string]>,
  MigrationError | SqlError.SqlError,
  SqlClient.SqlClient
> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`
      yield* sql`CREATE TABLE IF NOT EXISTS ${sql(MIGRATIONS_TABLE)} (
        migration_id integer primary key,
        created_at timestamp with time zone not null default now(),
        name text not null
      )`
      return yield* PgMigrator.run({
        loader: PgMigrator.fromFileSystem(MIGRATIONS_DIR),
        table: MIGRATIONS_TABLE,
      })
    }),
  )
}).pipe(Effect.provide(BunContext.layer))

/** How long GET /readyz waits on the database: the whole check, whatever the pool is doing. */
export const READINESS_TIMEOUT_MS = 2_000

/**
 * For GET /readyz: the database answers within READINESS_TIMEOUT_MS and the newest migration is
 * applied. One query: it fails as well when the database is unreachable or not migrated at all.
 */
export const readiness: Effect.Effect<boolean, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const newest = SqlSchema.single({
    Request: Schema.Void,
    Result: Schema.Struct({ id: Schema.NullOr(Schema.Number) }),
    execute: () => sql`SELECT max(migration_id) AS id FROM ${sql(MIGRATIONS_TABLE)}`,
  })
  const { id } = yield* newest()
  return (id ?? 0) >= LATEST_MIGRATION_ID
}).pipe(
  // The timeout interrupts the query, and an interrupted query is cancelled with another query,
  // as slow as the first on a hung database: disconnected, the answer does not wait for that.
  Effect.disconnect,
  Effect.timeout(READINESS_TIMEOUT_MS),
  Effect.catchAllCause(() => Effect.succeed(false)),
)
