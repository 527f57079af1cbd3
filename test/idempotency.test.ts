/** Idempotency keys over HTTP: replays, reuse, concurrent and abandoned requests, 5xx, expiry (issue #11). */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import { makeClient, run, withIdempotencyKey } from "parley/client"
import { AgentId } from "../src/Domain/Ids.ts"
import { Idempotency, purgeExpired } from "../src/Idempotency.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { count, query } from "./support/rows.ts"
import { ADMIN_TOKEN, startServer, type TestServer } from "./support/server.ts"
import {
  call,
  completeSession,
  createAgent,
  data,
  error,
  eventually,
  type Json,
  sessionCount,
  TRANSCRIPT,
} from "./support/sessions.ts"

let s: TestServer
/** A second instance on the same database. */
let other: TestServer
beforeAll(async () => {
  ;[s, other] = await Promise.all([startServer(), startServer()])
})
afterAll(() => Promise.all([s.dispose(), other.dispose()]))
beforeEach(() => {
  s.livekit.clear()
  s.gemini.clear()
})

const SESSIONS = "/api/v1/voice/sessions"
const AGENTS = "/api/v1/voice/agents"

/** A POST with an Idempotency-Key; the raw body text and headers are kept for byte comparisons. */
const post = async (
  apiKey: string,
  path: string,
  body: unknown,
  key: string | undefined,
  init: RequestInit = {},
  server: TestServer = s,
) => {
  const headers = new Headers(init.headers)
  if (key !== undefined) headers.set("idempotency-key", key)
  const response = await server.fetchRaw(path, {
    ...init,
    method: "POST",
    apiKey,
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, text, json: JSON.parse(text) as Json, headers: response.headers }
}

const tenant = async () => {
  const t = await s.newTenant()
  const agentId = await createAgent(s, t.apiKey)
  const start = { agent_id: agentId, participant: { identity: "user_1", name: "Alice" } }
  return { ...t, agentId, start }
}

const roomsOf = (orgId: string) =>
  [...s.livekit.rooms.values()].filter((room) => JSON.parse(room.metadata).org_id === orgId)
const createRooms = () => s.livekit.requests.filter((r) => r.method === "CreateRoom").length

const keysOf = (orgId: string) =>
  count(s, (sql) => sql`SELECT count(*)::int AS n FROM idempotency_keys WHERE org_id = ${orgId}`)
/** The status stored for a key: undefined without a row, null while its request runs. */
const StoredStatus = Schema.Struct({ status: Schema.NullOr(Schema.Int) })
const storedStatus = (orgId: string, key: string) =>
  query(
    s,
    StoredStatus,
    (sql) => sql`SELECT status FROM idempotency_keys WHERE org_id = ${orgId} AND key = ${key}`,
  ).then((rows) => rows[0]?.status)
const waiting = (server = s) => server.run(Effect.flatMap(Idempotency, (i) => i.waiting))

/** The same answer, byte for byte, the second one marked as a replay with its own request id. */
const expectReplay = (first: Awaited<ReturnType<typeof post>>, again: Awaited<ReturnType<typeof post>>) => {
  expect(again.status).toBe(first.status)
  expect(again.text).toBe(first.text)
  expect(again.headers.get("content-type")).toBe(first.headers.get("content-type"))
  expect(first.headers.get("idempotent-replayed")).toBeNull()
  expect(again.headers.get("idempotent-replayed")).toBe("true")
  expect(again.headers.get("x-request-id")).not.toBe(first.headers.get("x-request-id"))
}

describe("a POST retried with its key", () => {
  test("starts one session and one room; the retry gets the first response byte for byte", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const first = await post(apiKey, SESSIONS, start, key)
    expect(first.status).toBe(201)
    const again = await post(apiKey, SESSIONS, start, key)
    expectReplay(first, again)
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(roomsOf(orgId)).toHaveLength(1)
  })

  test("two requests at once with one key: one session, one room, the same answer", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const rooms = createRooms()
    const replies = await Promise.all([
      post(apiKey, SESSIONS, start, key),
      post(apiKey, SESSIONS, start, key),
    ])
    expect(replies.map((r) => r.status)).toEqual([201, 201])
    expect(replies[1].text).toBe(replies[0].text)
    expect(replies.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(1)
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(roomsOf(orgId)).toHaveLength(1)
    expect(createRooms() - rooms).toBe(1)
  })

  test("a retry while the first request runs waits for it and replays its answer", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const hold = makeHold()
    s.livekit.inject({ method: "CreateRoom", hold, times: 1 })
    const first = post(apiKey, SESSIONS, start, key)
    await hold.arrived
    const second = post(apiKey, SESSIONS, start, key)
    await eventually(async () => (await waiting()) === 1)
    hold.release()
    const [a, b] = await Promise.all([first, second])
    expect(a.status).toBe(201)
    expectReplay(a, b)
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(roomsOf(orgId)).toHaveLength(1)
  })

  test("a retry on another instance waits for the first request there and replays its answer", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const hold = makeHold()
    s.livekit.inject({ method: "CreateRoom", hold, times: 1 })
    const first = post(apiKey, SESSIONS, start, key)
    await hold.arrived
    const second = post(apiKey, SESSIONS, start, key, {}, other)
    await eventually(async () => (await waiting(other)) === 1)
    hold.release()
    const [a, b] = await Promise.all([first, second])
    expect(a.status).toBe(201)
    expectReplay(a, b)
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(other.livekit.requests.filter((r) => r.method === "CreateRoom")).toHaveLength(0)
  })

  test("a client that gave up does not lose the outcome: its retry gets the session started for it", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const hold = makeHold()
    s.livekit.inject({ method: "CreateRoom", hold, times: 1 })
    const abort = new AbortController()
    const disconnects = s.disconnects()
    const first = post(apiKey, SESSIONS, start, key, { signal: abort.signal }).catch((e: unknown) => e)
    await hold.arrived
    abort.abort()
    await first
    await eventually(() => s.disconnects() > disconnects)
    hold.release()
    await eventually(async () => (await storedStatus(orgId, key)) === 201)
    const again = await post(apiKey, SESSIONS, start, key)
    expect(again.status).toBe(201)
    expect(again.headers.get("idempotent-replayed")).toBe("true")
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(roomsOf(orgId)).toHaveLength(1)
  })

  test("the published client sends a key with withIdempotencyKey", async () => {
    const { apiKey, orgId, agentId } = await tenant()
    const key = crypto.randomUUID()
    const client = makeClient({ baseUrl: s.baseUrl, apiKey })
    const start = client.sessions
      .start({ payload: { agent_id: AgentId.make(agentId), participant: { identity: "user_1" } } })
      .pipe(withIdempotencyKey(key))
    const first = await run(start)
    const again = await run(start)
    expect(again).toEqual(first)
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(await storedStatus(orgId, key)).toBe(201)
  })

  test("a complete is replayed without asking the model again", async () => {
    const { apiKey, start } = await tenant()
    const started = await post(apiKey, SESSIONS, start, undefined)
    const id = (started.json.data as Json).session_id as string
    const path = `${SESSIONS}/${id}/complete`
    const key = crypto.randomUUID()
    const first = await post(apiKey, path, { transcript: TRANSCRIPT }, key)
    expect(first.status).toBe(200)
    const asked = s.gemini.requests.filter((r) => r.method === "generateContent").length
    const again = await post(apiKey, path, { transcript: TRANSCRIPT }, key)
    expectReplay(first, again)
    expect(s.gemini.requests.filter((r) => r.method === "generateContent")).toHaveLength(asked)
  })
})

describe("a key reused for another request", () => {
  test("with another body is 409 idempotency_key_reused, and nothing is created", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    expect((await post(apiKey, SESSIONS, start, key)).status).toBe(201)
    const other = await post(apiKey, SESSIONS, { ...start, ttl_seconds: 900 }, key)
    expect(other.status).toBe(409)
    expect(other.json.error).toMatchObject({
      type: "conflict_error",
      code: "idempotency_key_reused",
      param: "Idempotency-Key",
      request_id: other.headers.get("x-request-id") as string,
    })
    expect((other.json.error as Json).message).toContain("another request body")
    // bytes are compared: the same JSON written differently is another body
    const spaced = await post(apiKey, SESSIONS, JSON.stringify(start, null, 2), key)
    expect(spaced.status).toBe(409)
    expect(await sessionCount(s, orgId)).toBe(1)
  })

  test("on another route is 409 idempotency_key_reused naming the first one", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const agent = await post(apiKey, AGENTS, { name: "A", instructions: "Be brief." }, key)
    expect(agent.status).toBe(200)
    const other = await post(apiKey, SESSIONS, start, key)
    expect(other.status).toBe(409)
    expect(error({ status: other.status, body: other.json, headers: other.headers })).toMatchObject({
      code: "idempotency_key_reused",
      message: expect.stringContaining(`POST ${AGENTS}`),
    })
    expect(await sessionCount(s, orgId)).toBe(0)
  })
})

describe("what is kept", () => {
  test("a 5xx is not: the key is free, and the retry starts the session", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    s.livekit.inject({ method: "CreateRoom", status: 503, times: 1 })
    const failed = await post(apiKey, SESSIONS, start, key)
    expect(failed.status).toBe(502)
    expect((failed.json.error as Json).code).toBe("voice_livekit_failed")
    expect(await keysOf(orgId)).toBe(0)
    const retried = await post(apiKey, SESSIONS, start, key)
    expect(retried.status).toBe(201)
    expect(retried.headers.get("idempotent-replayed")).toBeNull()
    expect(await sessionCount(s, orgId)).toBe(1)
    expect(roomsOf(orgId)).toHaveLength(1)
  })

  test("a 4xx the endpoint answered is replayed", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    const body = { ...start, ttl_seconds: 60, max_duration_seconds: 120 }
    const first = await post(apiKey, SESSIONS, body, key)
    expect(first.status).toBe(400)
    expect((first.json.error as Json).code).toBe("voice_session_ttl_too_short")
    expectReplay(first, await post(apiKey, SESSIONS, body, key))
    expect(await sessionCount(s, orgId)).toBe(0)
  })

  test("a request refused as invalid is not: the key is free for the corrected request", async () => {
    const { apiKey, orgId, agentId, start } = await tenant()
    const key = crypto.randomUUID()
    const invalid = await post(apiKey, SESSIONS, { agent_id: agentId }, key)
    expect(invalid.status).toBe(400)
    expect((invalid.json.error as Json).code).toBe("invalid_request_body")
    const broken = await post(apiKey, SESSIONS, "{", key)
    expect((broken.json.error as Json).code).toBe("invalid_json_body")
    expect(await keysOf(orgId)).toBe(0)
    expect((await post(apiKey, SESSIONS, start, key)).status).toBe(201)
    expect(await sessionCount(s, orgId)).toBe(1)
  })
})

describe("scope and lifetime", () => {
  test("keys belong to an organization: the same key in two is two requests", async () => {
    const [a, b] = await Promise.all([tenant(), tenant()])
    const key = crypto.randomUUID()
    const [first, second] = [
      await post(a.apiKey, SESSIONS, a.start, key),
      await post(b.apiKey, SESSIONS, b.start, key),
    ]
    expect([first.status, second.status]).toEqual([201, 201])
    expect(second.headers.get("idempotent-replayed")).toBeNull()
    expect((first.json.data as Json).session_id).not.toBe((second.json.data as Json).session_id)
    expect([await sessionCount(s, a.orgId), await sessionCount(s, b.orgId)]).toEqual([1, 1])
  })

  test("an expired key is a new key, and the purge deletes it", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    expect((await post(apiKey, SESSIONS, start, key)).status).toBe(201)
    const expire = () =>
      count(
        s,
        (sql) => sql`WITH e AS (UPDATE idempotency_keys SET expires_at = now() - interval '1 second'
          WHERE org_id = ${orgId} RETURNING 1) SELECT count(*)::int AS n FROM e`,
      )
    expect(await expire()).toBe(1)
    const after = await post(apiKey, SESSIONS, start, key)
    expect(after.status).toBe(201)
    expect(after.headers.get("idempotent-replayed")).toBeNull()
    expect(await sessionCount(s, orgId)).toBe(2)
    expect(await expire()).toBe(1)
    expect(await s.run(purgeExpired)).toBeGreaterThanOrEqual(1)
    expect(await keysOf(orgId)).toBe(0)
  })

  test("a key whose request was abandoned (its lease lapsed, no response) is free again", async () => {
    const { apiKey, orgId, start } = await tenant()
    const key = crypto.randomUUID()
    await count(
      s,
      (sql) => sql`WITH i AS (INSERT INTO idempotency_keys
          (org_id, key, method, path, body_hash, lease_token, locked_until, expires_at)
        VALUES (${orgId}, ${key}, 'POST', ${SESSIONS}, 'abandoned', ${crypto.randomUUID()},
          now() - interval '1 second', now() + interval '1 day') RETURNING 1) SELECT count(*)::int AS n FROM i`,
    )
    const started = await post(apiKey, SESSIONS, start, key)
    expect(started.status).toBe(201)
    expect(await storedStatus(orgId, key)).toBe(201)
    expect(await sessionCount(s, orgId)).toBe(1)
  })
})

describe("the header", () => {
  const agent = { name: "A", instructions: "Be brief." }

  test.each([
    ["empty", "", "must not be empty"],
    ["longer than 255 characters", "k".repeat(256), "must be at most 255 characters"],
    ["with a space", "two words", "must be printable ASCII without spaces (a UUID is a good key)"],
    ["two keys joined", "a, b", "must be printable ASCII without spaces (a UUID is a good key)"],
  ])("%s is 400 invalid_request naming it, and nothing is created", async (_, key, problem) => {
    const { apiKey, orgId } = await s.newTenant()
    const reply = await post(apiKey, AGENTS, agent, key)
    expect(reply.status).toBe(400)
    expect(reply.json.error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_request",
      param: "Idempotency-Key",
      issues: [{ path: "Idempotency-Key", message: problem }],
    })
    expect(await count(s, (sql) => sql`SELECT count(*)::int AS n FROM agents WHERE org_id = ${orgId}`)).toBe(
      0,
    )
  })

  test("255 visible ASCII characters are a key", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const key = `${"!~".repeat(127)}x`
    const first = await post(apiKey, AGENTS, agent, key)
    expect(first.status).toBe(200)
    expectReplay(first, await post(apiKey, AGENTS, agent, key))
    expect(await keysOf(orgId)).toBe(1)
  })

  test("means nothing on other methods, and is refused on admin POSTs", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const listed = await call(s, apiKey, "GET", AGENTS, undefined, { headers: { "idempotency-key": "k" } })
    expect(listed.status).toBe(200)
    expect(listed.headers.get("idempotent-replayed")).toBeNull()
    expect(await keysOf(orgId)).toBe(0)
    const admin = await post(ADMIN_TOKEN, "/admin/v1/orgs", { name: "Acme" }, crypto.randomUUID())
    expect(admin.status).toBe(400)
    expect(admin.json.error).toMatchObject({ code: "invalid_request", param: "Idempotency-Key" })
  })
})

test("a complete's 409 is replayed too", async () => {
  const { apiKey, start } = await tenant()
  const started = await post(apiKey, SESSIONS, start, undefined)
  const id = data({ status: 201, body: started.json, headers: started.headers }).session_id as string
  expect((await completeSession(s, apiKey, id, { transcript: TRANSCRIPT })).status).toBe(200)
  const key = crypto.randomUUID()
  const other = [{ role: "user", text: "Something else." }]
  const first = await post(apiKey, `${SESSIONS}/${id}/complete`, { transcript: other }, key)
  expect(first.status).toBe(409)
  expectReplay(first, await post(apiKey, `${SESSIONS}/${id}/complete`, { transcript: other }, key))
})

test("the OpenAPI document has the header on every POST with an API key, and the 409s only there", async () => {
  const spec = (await (await s.fetchRaw("/openapi.json")).json()) as {
    paths: Record<string, Record<string, { parameters?: Array<Json>; responses: Record<string, Json> }>>
  }
  const takesKey = (path: string, method: string) =>
    (spec.paths[path][method].parameters ?? []).some((p) => p.name === "Idempotency-Key" && p.in === "header")
  const conflicts = (path: string, method: string) =>
    String(spec.paths[path][method].responses["409"]?.description ?? "")
  const posts = Object.entries(spec.paths).flatMap(([path, ops]) => ("post" in ops ? [path] : []))
  expect(posts.filter((path) => takesKey(path, "post")).sort()).toEqual(
    posts.filter((path) => path.startsWith("/api/v1/voice/") && !path.includes("webhooks/livekit")).sort(),
  )
  expect(takesKey(SESSIONS, "post")).toBe(true)
  expect(conflicts(SESSIONS, "post")).toBe("idempotency_key_reused | idempotency_key_in_use")
  expect(conflicts("/api/v1/voice/sessions/{id}/complete", "post")).toBe(
    "idempotency_key_reused | idempotency_key_in_use | voice_session_not_active",
  )
  expect(spec.paths[SESSIONS].post.responses["201"].headers).toHaveProperty("Idempotent-Replayed")
  for (const [path, method] of [
    [AGENTS, "get"],
    ["/api/v1/voice/agents/{id}", "patch"],
    ["/api/v1/voice/webhooks/livekit", "post"],
    ["/admin/v1/orgs", "post"],
  ]) {
    expect(takesKey(path, method)).toBe(false)
    expect(conflicts(path, method)).toBe("")
  }
})
