/**
 * The database: DATABASE_URL, or else the `parley` database of the embedded PostgreSQL in
 * `<DATA_DIR>/pg`; migrated before use. Process control, pool and migrations live in Sql/.
 */
import { resolve } from "node:path"
import type { SqlClient, SqlError } from "@effect/sql"
import type { MigrationError } from "@effect/sql/Migrator"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, type Redacted, type Scope } from "effect"
import { AppConfig } from "./Config.ts"
import { ensureDatabase, pgClientLayer } from "./Sql/Client.ts"
import {
  type EmbeddedPostgres,
  type EmbeddedPostgresError,
  runningEmbeddedPostgres,
  startEmbeddedPostgres,
} from "./Sql/EmbeddedPostgres.ts"
import { migrate, readiness } from "./Sql/Migrator.ts"
import { superviseEmbeddedPostgres } from "./Sql/Supervisor.ts"

type Sql = PgClient.PgClient | SqlClient.SqlClient

/**
 * The pool on `url`, built once the migrations are applied. Every start checks them; when the newest
 * is already applied (the usual restart) one query replaces the migrator's locked transaction.
 */
export const sqlLayer = (url: Redacted.Redacted): Layer.Layer<Sql, MigrationError | SqlError.SqlError> =>
  Layer.effectDiscard(Effect.unlessEffect(migrateOn(url), readiness)).pipe(
    Layer.provideMerge(pgClientLayer(url)),
  )

/**
 * Migrations run on a connection of their own, without the pool's statement deadlines: an instance
 * may wait on another's migration lock, and a migration may run long DDL.
 */
const migrateOn = (url: Redacted.Redacted) =>
  Effect.scoped(
    Effect.flatMap(
      Layer.build(PgClient.layer({ url, maxConnections: 1, applicationName: "parley-migrate" })),
      (context) => Effect.provide(migrate, context),
    ),
  )

const parleyDatabase = (pg: EmbeddedPostgres) =>
  ensureDatabase(pg.adminUrl, "parley").pipe(Effect.as(pg.url("parley")))

/** PostgreSQL's invalid_catalog_name: the database named in the URL does not exist. */
const isMissingDatabase = (error: MigrationError | SqlError.SqlError) =>
  error._tag === "SqlError" &&
  typeof error.cause === "object" &&
  error.cause !== null &&
  "code" in error.cause &&
  error.cause.code === "3D000"

/** The embedded `parley` database, created on its first start only: a restart opens the pool at once
 * instead of first connecting to the maintenance database to look for it. */
const embeddedSqlLayer = (pg: EmbeddedPostgres) =>
  sqlLayer(pg.url("parley")).pipe(
    Layer.catchAll((error) =>
      isMissingDatabase(error)
        ? Layer.unwrapEffect(Effect.map(parleyDatabase(pg), sqlLayer))
        : Layer.fail(error),
    ),
  )

/**
 * PgClient for DATABASE_URL, or for an embedded PostgreSQL started in `<DATA_DIR>/pg` and restarted
 * whenever its process exits (an external database is someone else's to restart: the pool simply
 * connects again once it answers).
 */
export const SqlLive: Layer.Layer<
  Sql,
  EmbeddedPostgresError | MigrationError | SqlError.SqlError,
  AppConfig
> = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (Option.isSome(config.databaseUrl)) return sqlLayer(config.databaseUrl.value)
    const options = { dir: resolve(config.dataDir, "pg") }
    const pg = yield* startEmbeddedPostgres(options)
    yield* Effect.logInfo(`embedded PostgreSQL running in ${pg.dir} on 127.0.0.1:${pg.port}`)
    yield* superviseEmbeddedPostgres(pg, options)
    return embeddedSqlLayer(pg)
  }),
)

/**
 * The `parley` database of the embedded cluster in `<dataDir>/pg`, for tools such as the CLI: the
 * cluster a running server uses, or else the cluster started for the scope (and stopped with it).
 */
export const embeddedDatabaseUrl = (
  dataDir: string,
): Effect.Effect<Redacted.Redacted, EmbeddedPostgresError | SqlError.SqlError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = resolve(dataDir, "pg")
    const running = yield* runningEmbeddedPostgres(dir)
    return yield* parleyDatabase(
      Option.isSome(running) ? running.value : yield* startEmbeddedPostgres({ dir }),
    )
  })
