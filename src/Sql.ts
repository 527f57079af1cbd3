/**
 * The database: DATABASE_URL, or else the `parley` database of the embedded PostgreSQL in
 * `<DATA_DIR>/pg`; migrated before use. Process control, pool and migrations live in Sql/.
 */
import { resolve } from "node:path"
import type { SqlClient, SqlError } from "@effect/sql"
import type { MigrationError } from "@effect/sql/Migrator"
import type { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, type Redacted, type Scope } from "effect"
import { AppConfig } from "./Config.ts"
import { ensureDatabase, pgClientLayer } from "./Sql/Client.ts"
import {
  type EmbeddedPostgres,
  type EmbeddedPostgresError,
  runningEmbeddedPostgres,
  startEmbeddedPostgres,
} from "./Sql/EmbeddedPostgres.ts"
import { migrate } from "./Sql/Migrator.ts"

type Sql = PgClient.PgClient | SqlClient.SqlClient

/** The pool on `url`, built once the migrations are applied. */
export const sqlLayer = (url: Redacted.Redacted): Layer.Layer<Sql, MigrationError | SqlError.SqlError> =>
  Layer.effectDiscard(migrate).pipe(Layer.provideMerge(pgClientLayer(url)))

const parleyDatabase = (pg: EmbeddedPostgres) =>
  ensureDatabase(pg.adminUrl, "parley").pipe(Effect.as(pg.url("parley")))

/** PgClient for DATABASE_URL, or for an embedded PostgreSQL started in `<DATA_DIR>/pg`. */
export const SqlLive: Layer.Layer<
  Sql,
  EmbeddedPostgresError | MigrationError | SqlError.SqlError,
  AppConfig
> = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (Option.isSome(config.databaseUrl)) return sqlLayer(config.databaseUrl.value)
    const dir = resolve(config.dataDir, "pg")
    const pg = yield* startEmbeddedPostgres({ dir })
    yield* Effect.logInfo(`embedded PostgreSQL running in ${dir} on 127.0.0.1:${pg.port}`)
    return sqlLayer(yield* parleyDatabase(pg))
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
