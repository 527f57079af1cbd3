/**
 * The API key and agent caches, across two instances on one database: hits are served without the
 * database, writes invalidate every instance (through NOTIFY on the LISTEN connection), misses are
 * never kept, and a lost listener flushes everything. Rows are changed behind the server's back with
 * plain SQL (no NOTIFY) to tell a cached answer from a fresh one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { hashKey } from "../src/Auth/ApiKeys.ts"
import { salesQualifier } from "./support/fixtures.ts"
import { ADMIN_TOKEN, startServer, type TestServer } from "./support/server.ts"
import { eventually, listening } from "./support/sessions.ts"

let a: TestServer
let b: TestServer
beforeAll(async () => {
  // entries never expire here, so an answer from the cache is told apart from a fresh one
  ;[a, b] = await Promise.all([
    startServer({ cacheTtlMs: 3_600_000 }),
    startServer({ cacheTtlMs: 3_600_000 }),
  ])
  // the caches are on once each instance hears the others' invalidations
  await eventually(async () => (await listening(a)) && (await listening(b)))
})
afterAll(() => Promise.all([a.dispose(), b.dispose()]))

/** SQL on the shared database, bypassing the services (and so the notifications). */
const sql = (query: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  a.run(Effect.flatMap(SqlClient.SqlClient, query))

const silentlyRevoke = (keyId: string) =>
  sql((s) => s`UPDATE api_keys SET revoked_at = now() WHERE id = ${keyId}`)

const createAgent = async (s: TestServer, apiKey: string) => {
  const res = await s.fetchRaw("/api/v1/voice/agents", {
    method: "POST",
    apiKey,
    body: JSON.stringify(salesQualifier),
  })
  expect(res.status).toBe(200)
  return ((await res.json()) as { data: { agent_id: string } }).data.agent_id
}

const getAgent = async (s: TestServer, apiKey: string, id: string) => {
  const res = await s.fetchRaw(`/api/v1/voice/agents/${id}`, { apiKey })
  return { status: res.status, body: (await res.json()) as { data: Record<string, unknown> } }
}

const status = async (s: TestServer, apiKey: string, id: string) => (await getAgent(s, apiKey, id)).status

test("a cached key keeps working until it is revoked; a revoke on A then fails it on A at once and on B", async () => {
  const { apiKey, keyId } = await a.newTenant()
  const agentId = await createAgent(a, apiKey)
  expect(await status(a, apiKey, agentId)).toBe(200)
  expect(await status(b, apiKey, agentId)).toBe(200)
  // revoked without a notification: both instances still answer from their caches
  await silentlyRevoke(keyId)
  expect(await status(a, apiKey, agentId)).toBe(200)
  expect(await status(b, apiKey, agentId)).toBe(200)

  const revoked = await a.fetchRaw(`/admin/v1/api_keys/${keyId}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  })
  expect(revoked.status).toBe(200)
  expect(await status(a, apiKey, agentId)).toBe(401)
  await eventually(async () => (await status(b, apiKey, agentId)) === 401)
})

test("PATCH and DELETE on A: A answers the new version at once, B once notified", async () => {
  const { apiKey } = await a.newTenant()
  const agentId = await createAgent(a, apiKey)
  expect((await getAgent(b, apiKey, agentId)).body.data.name).toBe(salesQualifier.name)

  const patched = await a.fetchRaw(`/api/v1/voice/agents/${agentId}`, {
    method: "PATCH",
    apiKey,
    body: JSON.stringify({ name: "Renamed" }),
  })
  expect(patched.status).toBe(200)
  expect((await getAgent(a, apiKey, agentId)).body.data.name).toBe("Renamed")
  await eventually(async () => (await getAgent(b, apiKey, agentId)).body.data.name === "Renamed")

  const deleted = await a.fetchRaw(`/api/v1/voice/agents/${agentId}`, { method: "DELETE", apiKey })
  expect(deleted.status).toBe(200)
  expect((await getAgent(a, apiKey, agentId)).body.data.is_active).toBe(false)
  await eventually(async () => (await getAgent(b, apiKey, agentId)).body.data.is_active === false)
})

test("a miss is never cached: a key that did not exist works as soon as it does", async () => {
  const { orgId, apiKey: existing } = await a.newTenant()
  const agentId = await createAgent(a, existing)
  const apiKey = `pk_live_${crypto.randomUUID().replaceAll("-", "")}`
  expect(await status(a, apiKey, agentId)).toBe(401)
  await sql(
    (s) => s`INSERT INTO api_keys (id, org_id, name, prefix, key_hash)
      VALUES (${crypto.randomUUID()}, ${orgId}, ${"late"}, ${apiKey.slice(0, 14)}, ${hashKey(apiKey)})`,
  )
  expect(await status(a, apiKey, agentId)).toBe(200)
})

test("a lost listener connection flushes the caches: changes made meanwhile are seen after it", async () => {
  const { apiKey, keyId } = await a.newTenant()
  const agentId = await createAgent(a, apiKey)
  expect(await status(b, apiKey, agentId)).toBe(200)
  await silentlyRevoke(keyId)
  expect(await status(b, apiKey, agentId)).toBe(200)

  await sql(
    (s) =>
      s`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'parley-listener'`,
  )
  // whether B answers while it reconnects (caching nothing) or after (starting empty), it reads the row
  await eventually(async () => (await status(b, apiKey, agentId)) === 401)
  await eventually(() => listening(b))
  expect(await status(b, apiKey, agentId)).toBe(401)
})

test("without any notification a revoked key still fails once its entry is older than CACHE_TTL_MS", async () => {
  const short = await startServer({ cacheTtlMs: 1 })
  try {
    const { apiKey, keyId } = await short.newTenant()
    const agentId = await createAgent(short, apiKey)
    expect(await status(short, apiKey, agentId)).toBe(200)
    await silentlyRevoke(keyId)
    await eventually(async () => (await status(short, apiKey, agentId)) === 401)
  } finally {
    await short.dispose()
  }
})
