import { describe, expect, test } from "bun:test"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Redacted } from "effect"
import { AppConfig } from "../src/Config.ts"
import {
  LATEST_MIGRATION_ID,
  pgClientLayer,
  readiness,
  SqlLive,
  stopEmbeddedPostgresSync,
} from "../src/Sql.ts"
import { freshDatabaseUrl, sqlLayerFor, TestSqlLayer, testPostgres } from "./support/db.ts"
import { proxy } from "./support/proxy.ts"

const run = <A, E>(
  effect: Effect.Effect<A, E, SqlClient.SqlClient>,
  layer: Layer.Layer<SqlClient.SqlClient, unknown>,
) => Effect.runPromise(effect.pipe(Effect.provide(layer)))

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
    expect(await run(tables, TestSqlLayer)).toEqual(expect.arrayContaining(appTables))
    expect(await run(readiness, TestSqlLayer)).toBe(true)
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
    expect(await run(migrated, layer)).toEqual([{ migration_id: LATEST_MIGRATION_ID }])
    expect(await run(tables, layer)).toEqual(expect.arrayContaining(appTables))
  })
})

describe("readiness", () => {
  test("false on an empty database, true once migrated", async () => {
    const url = Redacted.make(await freshDatabaseUrl())
    expect(await run(readiness, pgClientLayer(url))).toBe(false)
    expect(await run(readiness, sqlLayerFor(Redacted.value(url)))).toBe(true)
  })

  test("false within seconds when the database hangs or goes away", async () => {
    const pg = await testPostgres()
    const forwarder = await proxy(pg.port)
    const url = Redacted.make(
      Redacted.value(pg.url("parley_test")).replace(`:${pg.port}/`, `:${forwarder.port}/`),
    )
    const timed = Effect.timed(readiness).pipe(Effect.map(([d, ok]) => ({ ok, ms: Duration.toMillis(d) })))
    const check = Effect.gen(function* () {
      const up = yield* timed
      forwarder.hang()
      yield* Effect.sleep("200 millis") // let the pool drop its now-dead idle connection
      const hung = yield* timed
      forwarder.close()
      const closed = yield* timed
      return { up, hung, closed }
    })
    const { up, hung, closed } = await run(check, pgClientLayer(url))
    expect(up.ok).toBe(true)
    expect(hung.ok).toBe(false)
    expect(hung.ms).toBeGreaterThan(1500) // it really waited on the structural 2 s timeout
    expect(hung.ms).toBeLessThan(3000)
    expect(closed.ok).toBe(false)
    expect(closed.ms).toBeLessThan(3000)
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
      let t = performance.now()
      await run(insert, layer)
      const firstStart = performance.now() - t
      expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false) // stopped with the scope

      // stale lock files: a dead pid, and a live pid that is not postgres (as after a reboot)
      const dead = Bun.spawnSync(["true"]).pid
      for (const pid of [dead, process.pid]) {
        writeFileSync(join(dataDir, "pg", "postmaster.pid"), `${pid}\n${dataDir}/pg\n`)
        t = performance.now()
        expect(await run(names, layer)).toEqual([{ name: "kept" }])
      }
      const restart = performance.now() - t

      const child = await holdInChild(dataDir)
      const orphan = postmasterPid(dataDir)
      child.kill("SIGKILL")
      await child.exited
      expect(alive(orphan)).toBe(true) // postgres outlives a SIGKILLed parent
      expect(await run(names, layer)).toEqual([{ name: "kept" }])
      expect(alive(orphan)).toBe(false)
      console.log(`embedded start: first ${firstStart.toFixed(0)} ms, restart ${restart.toFixed(0)} ms`)
    } finally {
      stopEmbeddedPostgresSync(join(dataDir, "pg")) // only does something if an assertion failed midway
      await rm(dataDir, { recursive: true, force: true })
    }
  }, 60_000)
})
