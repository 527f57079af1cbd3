import { describe, expect, test } from "bun:test"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber, Layer, Option, Redacted, TestClock, TestContext } from "effect"
import { AppConfig } from "../src/Config.ts"
import { pgClientLayer } from "../src/Sql/Client.ts"
import { stopEmbeddedPostgres } from "../src/Sql/EmbeddedPostgres.ts"
import { LATEST_MIGRATION_ID, readiness } from "../src/Sql/Migrator.ts"
import { SqlLive } from "../src/Sql.ts"
import { freshDatabaseUrl, sqlLayerFor, testPostgres } from "./support/db.ts"
import { captureLogs } from "./support/logs.ts"
import { proxy } from "./support/proxy.ts"
import { until } from "./support/wait.ts"

const logs = captureLogs()

const run = <A, E>(
  effect: Effect.Effect<A, E, SqlClient.SqlClient>,
  layer: Layer.Layer<SqlClient.SqlClient, unknown>,
) => Effect.runPromise(effect.pipe(Effect.provide(layer), Effect.provide(logs.layer)))

const tables = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{
      table_name: string
    }>`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
).pipe(Effect.map((rows) => rows.map((r) => r.table_name).sort()))

const appTables = ["agents", "api_keys", "organizations", "sessions", "webhook_events"]

describe("SqlLive", () => {
  test("runs migrations against DATABASE_URL", async () => {
    const url = Redacted.make(await freshDatabaseUrl())
    const layer = SqlLive.pipe(Layer.provide(AppConfig.layer({ databaseUrl: Option.some(url) })))
    expect(await run(tables, layer)).toEqual(expect.arrayContaining(appTables))
    expect(await run(readiness, layer)).toBe(true)
  })

  test("several instances migrating one database at once all succeed", async () => {
    const url = await freshDatabaseUrl()
    const layer = sqlLayerFor(url)
    const builds = Array.from({ length: 4 }, () => Effect.scoped(Layer.build(layer)))
    await Effect.runPromise(Effect.all(builds, { concurrency: "unbounded" }))
    const migrated = Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<{ migration_id: number }>`SELECT migration_id FROM effect_sql_migrations`,
    )
    // each migration applied exactly once
    expect(await run(migrated, layer)).toEqual(
      Array.from({ length: LATEST_MIGRATION_ID }, (_, i) => ({ migration_id: i + 1 })),
    )
    expect(await run(tables, layer)).toEqual(expect.arrayContaining(appTables))
  })
})

describe("readiness", () => {
  test("false on an empty database, true once migrated", async () => {
    const url = Redacted.make(await freshDatabaseUrl())
    expect(await run(readiness, pgClientLayer(url))).toBe(false)
    expect(await run(readiness, sqlLayerFor(Redacted.value(url)))).toBe(true)
  })

  test("false after its 2 s timeout when the database hangs, and at once when it goes away", async () => {
    const pg = await testPostgres()
    const direct = await freshDatabaseUrl()
    expect(await run(readiness, sqlLayerFor(direct))).toBe(true) // migrated
    const forwarder = await proxy(pg.port)
    const url = Redacted.make(direct.replace(`:${pg.port}/`, `:${forwarder.port}/`))
    const check = Effect.gen(function* () {
      const up = yield* readiness
      forwarder.hang()
      // Under a TestClock that only the test moves, nothing times out unless the test says so.
      const afterwards = yield* Effect.gen(function* () {
        const hanging = yield* Effect.fork(readiness)
        yield* until(Effect.map(TestClock.sleeps(), (sleeps) => sleeps.length === 1)) // its timeout
        yield* TestClock.adjust("1999 millis")
        const early = yield* Fiber.poll(hanging)
        yield* TestClock.adjust("1 millis")
        const hung = yield* Fiber.join(hanging)
        forwarder.close()
        // The clock no longer moves: a false now comes from the lost connection, not a timeout.
        const closed = yield* readiness
        return { early: early._tag, hung, closed }
      }).pipe(Effect.provide(TestContext.TestContext))
      return { up, ...afterwards }
    })
    expect(await run(check, pgClientLayer(url))).toEqual({
      up: true,
      early: "None",
      hung: false,
      closed: false,
    })
  })
})

describe("embedded PostgreSQL (no DATABASE_URL)", () => {
  const insert = Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`INSERT INTO organizations (id, name) VALUES (${crypto.randomUUID()}, 'kept')`,
  )
  const names = Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ name: string }>`SELECT name FROM organizations`,
  )
  const postmasterPid = (dir: string) =>
    Number.parseInt(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8"), 10)
  /** A dead child stays a zombie until reaped: that is not a running postgres. */
  const alive = (pid: number) =>
    existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"))

  /** A separate `bun` holding SqlLive on dataDir, to be SIGKILLed like a crashed `npm start`. */
  const holdInChild = async (dataDir: string) => {
    const code = `
      import { Effect, Layer } from "effect"
      import { AppConfig } from "./src/Config.ts"
      import { SqlLive } from "./src/Sql.ts"
      const layer = SqlLive.pipe(Layer.provide(AppConfig.layer({ dataDir: ${JSON.stringify(dataDir)} })))
      Effect.runFork(Effect.scoped(Layer.build(layer).pipe(Effect.andThen(() => console.log("ready")), Effect.andThen(Effect.never))))`
    const child = Bun.spawn([process.execPath, "-e", code], {
      cwd: join(import.meta.dir, ".."),
      stdout: "pipe",
    })
    const reader = child.stdout.getReader()
    let out = ""
    while (!out.includes("ready")) {
      const chunk = await reader.read()
      if (chunk.done) throw new Error(`child exited: ${out}`)
      out += new TextDecoder().decode(chunk.value)
    }
    return child
  }

  test("initialises, persists across restarts, survives stale pid files and a SIGKILLed owner", async () => {
    const dataDir = await mkdtemp("/tmp/parley-sql-test-")
    const layer = SqlLive.pipe(Layer.provide(AppConfig.layer({ dataDir })))
    try {
      await run(insert, layer)
      expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false) // stopped with the scope

      // stale lock files: a dead pid, and a live pid that is not postgres (as after a reboot)
      const dead = Bun.spawnSync(["true"]).pid
      for (const pid of [dead, process.pid]) {
        writeFileSync(join(dataDir, "pg", "postmaster.pid"), `${pid}\n${dataDir}/pg\n`)
        expect(await run(names, layer)).toEqual([{ name: "kept" }])
      }

      const child = await holdInChild(dataDir)
      const orphan = postmasterPid(dataDir)
      child.kill("SIGKILL")
      await child.exited
      expect(alive(orphan)).toBe(true) // postgres outlives a SIGKILLed parent
      expect(await run(names, layer)).toEqual([{ name: "kept" }])
      expect(alive(orphan)).toBe(false)
    } finally {
      await Effect.runPromise(stopEmbeddedPostgres(join(dataDir, "pg"))) // only if an assertion failed midway
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
