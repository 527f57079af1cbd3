/** The database goes away under a running server: 503 in the one envelope, nothing lost, recovery. */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { Option, Redacted } from "effect"
import { makeHold } from "../src/Local/Faults.ts"
import { testPostgres } from "./support/db.ts"
import { expectUnavailable } from "./support/envelope.ts"
import { proxy } from "./support/proxy.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { eventually } from "./support/wait.ts"

let server: TestServer
let db: Awaited<ReturnType<typeof proxy>>

beforeAll(async () => {
  const pg = await testPostgres()
  db = await proxy(pg.port)
  const url = Redacted.value(pg.url("parley_test")).replace(`:${pg.port}/`, `:${db.port}/`)
  server = await startServer({ databaseUrl: Option.some(Redacted.make(url)) })
})
afterAll(async () => {
  db.restore()
  await server.dispose()
  db.close()
})

const AGENTS = "/api/v1/voice/agents"

test("requests answer 503 service_unavailable while the database is down, and work again after", async () => {
  const { apiKey } = await server.newTenant()
  const created = await server.fetchRaw(AGENTS, {
    method: "POST",
    apiKey,
    body: JSON.stringify({ name: "survivor", instructions: "stay" }),
  })
  expect(created.status).toBe(200)

  db.refuse()
  await expectUnavailable(await server.fetchRaw(AGENTS, { apiKey }))
  await expectUnavailable(
    await server.fetchRaw(AGENTS, {
      method: "POST",
      apiKey,
      body: JSON.stringify({ name: "x", instructions: "y" }),
    }),
  )
  await expectUnavailable(await server.fetchRaw("/readyz"))
  expect((await server.fetchRaw("/healthz")).status).toBe(200)
  // The outage is logged (kept by the test server rather than printed).
  expect(server.logs().some((line) => line.includes("database unavailable"))).toBe(true)

  db.restore()
  const listed = await server.fetchRaw(AGENTS, { apiKey })
  expect(listed.status).toBe(200)
  const names = ((await listed.json()) as { data: { data: Array<{ name: string }> } }).data.data.map(
    (a) => a.name,
  )
  expect(names).toEqual(["survivor"])
  expect((await server.fetchRaw("/readyz")).status).toBe(200)
})

test("a complete whose outcome cannot be stored keeps it and answers once the database is back", async () => {
  const { apiKey } = await server.newTenant()
  const agent = await server.fetchRaw(AGENTS, {
    method: "POST",
    apiKey,
    body: JSON.stringify({ name: "keeper", instructions: "ask", output_schema: { budget: "number" } }),
  })
  const agentId = ((await agent.json()) as { data: { agent_id: string } }).data.agent_id
  const started = await server.fetchRaw("/api/v1/voice/sessions", {
    method: "POST",
    apiKey,
    body: JSON.stringify({ agent_id: agentId, participant: { identity: "u" } }),
  })
  const sessionId = ((await started.json()) as { data: { session_id: string } }).data.session_id
  const hold = makeHold()
  server.gemini.clear()
  server.gemini.inject({ method: "generateContent", hold, times: 1 })
  const completing = server.fetchRaw(`/api/v1/voice/sessions/${sessionId}/complete`, {
    method: "POST",
    apiKey,
    body: JSON.stringify({ transcript: [{ role: "user", text: "budget is 900" }] }),
  })
  // The transcript is claimed; then the database goes away before the outcome can be stored.
  await hold.arrived
  const outages = () => server.logs().filter((line) => line.includes("database unavailable")).length
  const before = outages()
  db.refuse()
  hold.release()
  // the store has failed at least once (it is retried, not answered with 503)
  await eventually(() => outages() > before)
  db.restore()
  const reply = await completing
  expect(reply.status).toBe(200)
  const body = (await reply.json()) as { status: string; results: Record<string, unknown> }
  expect(body).toMatchObject({ status: "completed", results: { budget: 900 } })
  // asked once: the outcome was kept while the database was away, not computed again
  expect(server.gemini.requests.filter((r) => r.method === "generateContent")).toHaveLength(1)
})
