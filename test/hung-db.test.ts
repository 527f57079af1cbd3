/**
 * A database that stops answering (its processes SIGSTOPped) under a running server: 503 in the one
 * envelope from the driver's own deadlines, /readyz 503, /healthz 200, and everything back after
 * SIGCONT. The cluster is this file's own, never the shared test database.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect, Exit, ManagedRuntime, Option, Scope } from "effect"
import { CONNECT_MS, ensureDatabase, pgClientLayer, QUERY_MS, STATEMENT_MS } from "../src/Sql/Client.ts"
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../src/Sql/EmbeddedPostgres.ts"
import { READINESS_TIMEOUT_MS } from "../src/Sql/Migrator.ts"
import { expectUnavailable } from "./support/envelope.ts"
import { clusterProcesses, signalAll } from "./support/postgres-processes.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { eventually } from "./support/wait.ts"

let root: string
let scope: Scope.CloseableScope
let pg: EmbeddedPostgres
let server: TestServer
/** The processes stopped by the test, resumed by it (or, after a failure, by afterAll). */
let stopped: Array<number> = []

beforeAll(async () => {
  root = await mkdtemp("/tmp/parley-hung-db-")
  scope = Effect.runSync(Scope.make())
  pg = await Effect.runPromise(
    startEmbeddedPostgres({ dir: join(root, "pg"), ephemeral: true }).pipe(
      Scope.extend(scope),
      Effect.tap((pg) => ensureDatabase(pg.adminUrl, "parley")),
    ),
  )
  server = await startServer({ databaseUrl: Option.some(pg.url("parley")) })
})
afterAll(async () => {
  signalAll(stopped, "SIGCONT")
  await server?.dispose()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await rm(root, { recursive: true, force: true })
})

const AGENTS = "/api/v1/voice/agents"

test("the driver's deadlines answer a hung database within 10 s, and readiness within 2 s", () => {
  // a free connection (queueing and connecting included), then the server's answer
  expect(CONNECT_MS + QUERY_MS).toBeLessThan(10_000)
  // a slow statement is cancelled by PostgreSQL (its connection stays usable) before the driver gives up
  expect(STATEMENT_MS).toBeLessThan(QUERY_MS)
  expect(READINESS_TIMEOUT_MS).toBeLessThanOrEqual(2_000)
})

test("a stopped database: 503 with the envelope, /readyz 503, /healthz 200; resumed, all answers again", async () => {
  const { apiKey } = await server.newTenant()
  const created = await server.fetchRaw(AGENTS, {
    method: "POST",
    apiKey,
    body: JSON.stringify({ name: "kept", instructions: "stay" }),
  })
  expect(created.status).toBe(200)
  // A pool of the server's kind, used one query at a time: it holds a single connection.
  const direct = ManagedRuntime.make(pgClientLayer(pg.url("parley")))
  const backendPid = Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`,
  ).pipe(Effect.map(([row]) => row.pid))
  try {
    const before = await direct.runPromise(backendPid)
    // the postmaster first: stopped, it forks no backend the scan could miss
    stopped = [pg.pid]
    signalAll(stopped, "SIGSTOP")
    stopped = clusterProcesses(pg.pid)
    signalAll(stopped, "SIGSTOP")

    const [listed, posted, ready, health, hung] = await Promise.all([
      server.fetchRaw(AGENTS, { apiKey }),
      server.fetchRaw(AGENTS, {
        method: "POST",
        apiKey,
        body: JSON.stringify({ name: "x", instructions: "y" }),
      }),
      server.fetchRaw("/readyz"),
      server.fetchRaw("/healthz"),
      direct.runPromise(Effect.flip(backendPid)),
    ])
    await expectUnavailable(listed)
    await expectUnavailable(posted)
    await expectUnavailable(ready)
    expect(health.status).toBe(200)
    expect(hung._tag).toBe("SqlError") // the driver gave up on the server, no timer of ours

    signalAll(stopped, "SIGCONT")
    stopped = []
    await eventually(async () => (await server.fetchRaw(AGENTS, { apiKey })).status === 200)
    const names = (
      (await (await server.fetchRaw(AGENTS, { apiKey })).json()) as {
        data: { data: Array<{ name: string }> }
      }
    ).data.data.map((a) => a.name)
    expect(names).toContain("kept")
    expect((await server.fetchRaw("/readyz")).status).toBe(200)
    // The connection whose query went unanswered was closed, not handed to the next query.
    expect(await direct.runPromise(backendPid)).not.toBe(before)
  } finally {
    await direct.dispose()
  }
})
