/** The database goes away under a running server: 503 in the one envelope, nothing lost, recovery. */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { Option, Redacted } from "effect"
import { testPostgres } from "./support/db.ts"
import { proxy } from "./support/proxy.ts"
import { startServer, type TestServer } from "./support/server.ts"

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

const expectUnavailable = async (res: Response) => {
  expect(res.status).toBe(503)
  const body = (await res.json()) as { error: Record<string, unknown> }
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "request_id", "type"])
  expect(body.error).toMatchObject({ type: "api_error", code: "service_unavailable" })
  expect(body.error.request_id).toBe(res.headers.get("x-request-id") as string)
  expect(JSON.stringify(body)).not.toMatch(/SELECT|INSERT|ECONN|at .*\.ts/)
}

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
