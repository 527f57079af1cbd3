/**
 * /api/v1/voice/webhook_endpoints: CRUD per organization, where webhooks may go (SSRF), and the failed
 * and expired events. Servers run on databases of their own (see webhook-delivery.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import fc from "fast-check"
import { Webhook } from "standardwebhooks"
import type { EndpointId } from "../src/Domain/WebhookEndpoint.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"
import { sweepOnce } from "../src/Sessions/Sweeper.ts"
import { junkId } from "./support/arbitraries.ts"
import { freshDatabaseUrl } from "./support/db.ts"
import { type Receiver, startReceiver } from "./support/receiver.ts"
import { count } from "./support/rows.ts"
import { failure, startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  call,
  completeSession,
  data,
  error,
  eventually,
  TRANSCRIPT,
  UNKNOWN_ID,
} from "./support/sessions.ts"

const BASE = "/api/v1/voice/webhook_endpoints"

const serverOn = async (overrides: Parameters<typeof startServer>[0] = {}) =>
  startServer({ databaseUrl: Option.some(Redacted.make(await freshDatabaseUrl())), ...overrides })

const endpointCount = (s: TestServer, orgId: string) =>
  count(s, (sql) => sql`SELECT count(*)::int AS n FROM webhook_endpoints WHERE org_id = ${orgId}`)

describe("with private targets allowed", () => {
  let s: TestServer
  let receiver: Receiver
  beforeAll(async () => {
    s = await serverOn({ webhookAllowPrivate: true, webhookRetryBaseMs: 20 })
    receiver = await startReceiver()
  })
  afterAll(async () => {
    await s.dispose()
    receiver.stop()
  })

  test("create, list, get, update, delete; the secret only in the create answer", async () => {
    const { apiKey } = await s.newTenant()
    const created = await call(s, apiKey, "POST", BASE, {
      url: receiver.url,
      description: "  CRM sync  ",
      enabled_events: ["voice_session.completed", "voice_session.failed"],
    })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ object: "webhook_endpoint", status: "completed" })
    const endpoint = data(created)
    expect(endpoint).toMatchObject({
      url: receiver.url,
      description: "CRM sync",
      enabled_events: ["voice_session.completed", "voice_session.failed"],
      enabled: true,
      disabled_reason: null,
      failing_since: null,
      previous_secret_expires_at: null,
    })
    expect(endpoint.secret as string).toMatch(/^whsec_/)
    const id = endpoint.endpoint_id as string
    const { secret: _, ...shown } = endpoint

    const got = await call(s, apiKey, "GET", `${BASE}/${id}`)
    expect(data(got)).toEqual(shown)
    const listed = await call(s, apiKey, "GET", BASE)
    expect(data(listed)).toEqual({ object: "list", data: [shown], has_more: false, total_count: 1 })

    const updated = await call(s, apiKey, "PATCH", `${BASE}/${id}`, { description: null, enabled: false })
    expect(updated.status).toBe(200)
    expect(data(updated)).toMatchObject({
      description: null,
      enabled: false,
      enabled_events: shown.enabled_events,
    })
    const all = await call(s, apiKey, "PATCH", `${BASE}/${id}`, { enabled_events: ["*"] })
    expect(data(all)).toMatchObject({ enabled_events: ["*"], enabled: false })

    const deleted = await call(s, apiKey, "DELETE", `${BASE}/${id}`)
    expect(deleted.body).toMatchObject({
      object: "webhook_endpoint.deleted",
      data: { endpoint_id: id, deleted: true },
    })
    expect((await call(s, apiKey, "GET", `${BASE}/${id}`)).status).toBe(404)
    expect((await call(s, apiKey, "DELETE", `${BASE}/${id}`)).status).toBe(404)
  })

  test("invalid bodies are 400 naming the field, and store nothing", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const cases: Array<[unknown, string]> = [
      [{}, "url"],
      [{ url: "ftp://example.com/x" }, "url"],
      [{ url: "not a url" }, "url"],
      [{ url: receiver.url, enabled_events: [] }, "enabled_events"],
      [{ url: receiver.url, enabled_events: ["voice_session.ended"] }, "enabled_events[0]"],
      [{ url: receiver.url, enabled_events: ["*", "*"] }, "enabled_events"],
      [{ url: receiver.url, secret: "whsec_mine" }, "secret"],
    ]
    for (const [body, param] of cases) {
      const reply = await call(s, apiKey, "POST", BASE, body)
      expect({ body, status: reply.status, code: error(reply).code, param: error(reply).param }).toEqual({
        body,
        status: 400,
        code: "invalid_request_body",
        param,
      })
    }
    expect(await endpointCount(s, orgId)).toBe(0)
    const id = data(await call(s, apiKey, "POST", BASE, { url: receiver.url })).endpoint_id
    const empty = await call(s, apiKey, "PATCH", `${BASE}/${id}`, {})
    expect(error(empty)).toMatchObject({
      code: "invalid_request_body",
      message: expect.stringContaining("at least one"),
    })
  })

  test("another organization's endpoint and deliveries are 404", async () => {
    const owner = await s.newTenant()
    const other = await s.newTenant()
    const id = data(await call(s, owner.apiKey, "POST", BASE, { url: receiver.url })).endpoint_id as string
    for (const [method, path] of [
      ["GET", `${BASE}/${id}`],
      ["PATCH", `${BASE}/${id}`],
      ["DELETE", `${BASE}/${id}`],
      ["POST", `${BASE}/${id}/rotate_secret`],
      ["GET", `${BASE}/${id}/deliveries`],
      ["POST", `${BASE}/${id}/deliveries/${UNKNOWN_ID}/redeliver`],
    ]) {
      const reply = await call(
        s,
        other.apiKey,
        method,
        path,
        method === "PATCH" ? { enabled: false } : undefined,
      )
      expect({ path, status: reply.status, code: error(reply).code }).toEqual({
        path,
        status: 404,
        code: "webhook_endpoint_not_found",
      })
    }
    expect(data(await call(s, other.apiKey, "GET", BASE)).data).toEqual([])
    const client = await s.client(owner.apiKey)
    const missing = await failure(
      client.webhookEndpoints.redeliver({
        path: { id: id as EndpointId, delivery_id: UNKNOWN_ID as never },
      }),
    )
    expect(missing).toMatchObject({ _tag: "WebhookDeliveryNotFound", param: "delivery_id" })
    expect(data(await call(s, owner.apiKey, "GET", `${BASE}/${id}`)).enabled).toBe(true)
  })

  test("deliveries are listed newest first, a page at a time", async () => {
    const { apiKey, agentId } = await activeSession(s)
    const id = data(
      await call(s, apiKey, "POST", BASE, { url: receiver.url, enabled_events: ["voice_session.started"] }),
    ).endpoint_id as string
    const sessions: Array<string> = []
    for (let i = 0; i < 3; i++)
      sessions.push(
        data(
          await call(s, apiKey, "POST", "/api/v1/voice/sessions", {
            agent_id: agentId,
            participant: { identity: "u" },
          }),
        ).session_id as string,
      )
    const page = async (query: string) =>
      data(await call(s, apiKey, "GET", `${BASE}/${id}/deliveries${query}`))
    const first = await page("?limit=2")
    expect(first.has_more).toBe(true)
    const firstItems = first.data as Array<{ delivery_id: string; session_id: string }>
    expect(firstItems.map((d) => d.session_id)).toEqual([sessions[2], sessions[1]])
    const second = await page(`?limit=2&starting_after=${firstItems[1].delivery_id}`)
    expect(second.has_more).toBe(false)
    expect((second.data as Array<{ session_id: string }>).map((d) => d.session_id)).toEqual([sessions[0]])
    const bad = await call(s, apiKey, "GET", `${BASE}/${id}/deliveries?limit=101`)
    expect(error(bad)).toMatchObject({ code: "invalid_request", param: "limit" })
  })

  test("generated bodies and path ids never get a 5xx; a refusal is the envelope and stores nothing", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const existing = data(await call(s, apiKey, "POST", BASE, { url: receiver.url })).endpoint_id as string
    const field = fc.oneof(fc.string(), fc.constant(null), fc.integer(), fc.boolean(), fc.jsonValue())
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          url: fc.oneof(fc.webUrl(), field),
          description: fc.oneof(fc.string({ maxLength: 600 }), field),
          enabled_events: fc.oneof(
            fc.array(fc.constantFrom("*", "voice_session.started", "voice_session.completed", "x", "")),
            field,
          ),
          enabled: fc.oneof(fc.boolean(), field),
          extra: field,
        },
        { requiredKeys: [] },
      ),
    )
    const isEnvelope = (reply: { body: Record<string, unknown> }) => {
      const e = reply.body.error as Record<string, unknown> | undefined
      return typeof e?.code === "string" && typeof e.message === "string" && typeof e.request_id === "string"
    }
    await fc.assert(
      fc.asyncProperty(body, junkId, async (sent, junk) => {
        const before = await endpointCount(s, orgId)
        const created = await call(s, apiKey, "POST", BASE, JSON.stringify(sent))
        expect(created.status === 201 || (created.status === 400 && isEnvelope(created))).toBe(true)
        expect(await endpointCount(s, orgId)).toBe(before + (created.status === 201 ? 1 : 0))
        const patched = await call(s, apiKey, "PATCH", `${BASE}/${existing}`, JSON.stringify(sent))
        expect(patched.status === 200 || (patched.status === 400 && isEnvelope(patched))).toBe(true)
        for (const path of [
          `${BASE}/${junk}`,
          `${BASE}/${junk}/deliveries`,
          `${BASE}/${existing}/deliveries/${junk}/redeliver`,
        ]) {
          const reply = await call(s, apiKey, path.endsWith("redeliver") ? "POST" : "GET", path)
          // (a junk id such as "." or ".." may reach another route: any answer but a 5xx, errors enveloped)
          expect({ path, ok: reply.status < 400 || (reply.status < 500 && isEnvelope(reply)) }).toEqual({
            path,
            ok: true,
          })
        }
      }),
      { seed: 4242, numRuns: 40 },
    )
  })

  test("a failed extraction sends voice_session.failed; an overdue session voice_session.expired", async () => {
    const { apiKey, agentId } = await activeSession(s, { output_schema: { rating: "number" } })
    const endpoint = data(
      await call(s, apiKey, "POST", BASE, {
        url: receiver.url,
        enabled_events: ["voice_session.failed", "voice_session.expired"],
      }),
    )
    const start = () =>
      call(s, apiKey, "POST", "/api/v1/voice/sessions", { agent_id: agentId, participant: { identity: "u" } })
    const failing = data(await start()).session_id as string
    const expiring = data(await start()).session_id as string
    s.gemini.inject({ method: "generateContent", status: 400, times: 1 })
    expect((await completeSession(s, apiKey, failing, { transcript: TRANSCRIPT })).status).toBe(502)
    // the expiring session's deadline and grace are long past: the sweeper expires it
    await s.run(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`UPDATE sessions SET expires_at = now() - interval '2 hours' WHERE id = ${expiring}`,
      ),
    )
    await s.run(sweepOnce.pipe(Effect.provide(SessionsRepo.Live)))
    const arrived = (id: string) => receiver.acknowledged().find((r) => r.sessionId === id)
    await eventually(() => arrived(failing) !== undefined && arrived(expiring) !== undefined)
    const verify = (id: string) =>
      new Webhook(endpoint.secret as string).verify(arrived(id)!.body, arrived(id)!.headers) as {
        type: string
        data: { status: string; error_log: Array<{ code: string }> }
      }
    expect(verify(failing).type).toBe("voice_session.failed")
    expect(verify(failing).data.status).toBe("failed")
    expect(verify(failing).data.error_log[0].code).toBe("voice_result_extraction_failed")
    expect(verify(expiring)).toMatchObject({ type: "voice_session.expired", data: { status: "expired" } })
    // not subscribed: no started event was sent for either
    expect(receiver.received.filter((r) => [failing, expiring].includes(r.sessionId)).length).toBe(2)
  })
})

describe("with private targets refused (the default)", () => {
  let s: TestServer
  let receiver: Receiver
  beforeAll(async () => {
    s = await serverOn({ webhookRetryBaseMs: 20 })
    receiver = await startReceiver()
  })
  afterAll(async () => {
    await s.dispose()
    receiver.stop()
  })

  test("http, loopback, private and link-local targets are 400 webhook_url_not_allowed; nothing stored", async () => {
    const { apiKey, orgId } = await s.newTenant()
    for (const url of [
      "http://example.com/hooks",
      "https://127.0.0.1/hooks",
      "https://localhost:8443/hooks",
      "https://[::1]/hooks",
      "https://[::ffff:127.0.0.1]/hooks",
      "https://10.1.2.3/hooks",
      "https://192.168.0.10/hooks",
      "https://169.254.169.254/latest/meta-data",
      "https://[fe80::1]/hooks",
      "https://0.0.0.0/hooks",
    ]) {
      const reply = await call(s, apiKey, "POST", BASE, { url })
      expect({ url, status: reply.status, code: error(reply).code, param: error(reply).param }).toEqual({
        url,
        status: 400,
        code: "webhook_url_not_allowed",
        param: "url",
      })
    }
    expect(await endpointCount(s, orgId)).toBe(0)
    // a public address is accepted (nothing is sent until an event happens)
    const ok = await call(s, apiKey, "POST", BASE, { url: "https://93.184.215.14/hooks" })
    expect(ok.status).toBe(201)
    const patched = await call(s, apiKey, "PATCH", `${BASE}/${data(ok).endpoint_id}`, {
      url: "https://127.0.0.2/",
    })
    expect(error(patched)).toMatchObject({ code: "webhook_url_not_allowed", param: "url" })
  })

  test("an endpoint whose address turned private is refused at delivery, each attempt recorded", async () => {
    const { apiKey, orgId, agentId } = await activeSession(s)
    // stored as if its name had resolved publicly when it was saved, and to loopback now
    const endpointId = crypto.randomUUID()
    await s.run(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`INSERT INTO webhook_endpoints (id, org_id, url, enabled_events, secret)
          VALUES (${endpointId}, ${orgId}, ${receiver.url.replace("http:", "https:")}, '{*}',
            ${`whsec_${Buffer.alloc(32, 1).toString("base64")}`})`,
      ),
    )
    await call(s, apiKey, "POST", "/api/v1/voice/sessions", {
      agent_id: agentId,
      participant: { identity: "u" },
    })
    const deliveries = async () =>
      data(await call(s, apiKey, "GET", `${BASE}/${endpointId}/deliveries`)).data as Array<{
        attempts: Array<{ status_code: number | null; error: string }>
      }>
    await eventually(async () => (await deliveries())[0]?.attempts.length >= 2)
    const [delivery] = await deliveries()
    expect(delivery).toMatchObject({ status: "pending", event_type: "voice_session.started" })
    for (const attempt of delivery.attempts) {
      expect(attempt.status_code).toBeNull()
      expect(attempt.error).toMatch(/^refused: the URL must not point at a private, loopback .*127\.0\.0\.1/)
    }
    expect(receiver.received).toEqual([])
  })
})
