/**
 * Outbound webhooks end to end: session changes reach a local receiver, signed per Standard Webhooks
 * (verified with the `standardwebhooks` package, not Parley's code), in order per session, at least
 * once, through failures, rotations, restarts. Each server runs on a database of its own, so no other
 * test's dispatcher delivers (or refuses) these events.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import { Webhook } from "standardwebhooks"
import type { AgentId } from "../src/Domain/Ids.ts"
import type { EndpointId } from "../src/Domain/WebhookEndpoint.ts"
import { freshDatabaseUrl } from "./support/db.ts"
import { type Receiver, startReceiver } from "./support/receiver.ts"
import { count } from "./support/rows.ts"
import { startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  completeSession,
  data,
  eventually,
  getSession,
  TRANSCRIPT,
} from "./support/sessions.ts"

/** Fast retries and a short timeout, so a failing receiver costs the tests little. */
const settings = { webhookAllowPrivate: true, webhookRetryBaseMs: 20, webhookTimeoutMs: 1000 }

const serverOn = (databaseUrl: string) =>
  startServer({ ...settings, databaseUrl: Option.some(Redacted.make(databaseUrl)) })

const createEndpoint = async (s: TestServer, apiKey: string, url: string, enabled_events?: Array<string>) => {
  const client = await s.client(apiKey)
  const created = await Effect.runPromise(
    client.webhookEndpoints.create({
      payload: { url, ...(enabled_events ? { enabled_events: enabled_events as never } : {}) },
    }),
  )
  return created.data
}

/** What `standardwebhooks` makes of a received request (throws if the signature does not verify). */
const verify = (secret: string, r: { body: string; headers: Record<string, string> }) =>
  new Webhook(secret).verify(r.body, r.headers) as { id: string; type: string; data: Record<string, unknown> }

const complete = (s: TestServer, apiKey: string, sessionId: string) =>
  completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT, duration_seconds: 42 })

describe("delivery", () => {
  let s: TestServer
  let receiver: Receiver
  beforeAll(async () => {
    s = await serverOn(await freshDatabaseUrl())
    receiver = await startReceiver()
  })
  afterAll(async () => {
    await s.dispose()
    receiver.stop()
  })

  test("a completed session reaches the receiver signed, with the session as GET returns it", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const endpoint = await createEndpoint(s, apiKey, receiver.url)
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect(Buffer.from(endpoint.secret.slice(6), "base64").length).toBe(32)
    const completed = await complete(s, apiKey, sessionId)
    expect(completed.status).toBe(200)
    await eventually(() => receiver.acknowledged().some((r) => r.sessionId === sessionId))
    const [delivered] = receiver.acknowledged().filter((r) => r.sessionId === sessionId)
    const event = verify(endpoint.secret, delivered)
    expect(event.type).toBe("voice_session.completed")
    expect(event.id).toBe(delivered.headers["webhook-id"])
    expect(event.data).toEqual(data(await getSession(s, apiKey, sessionId)))
    expect(event.data.results).toEqual(data(completed).results as Record<string, unknown>)
    // the endpoint was created after the start: only the completion was sent to it
    expect(receiver.received.filter((r) => r.sessionId === sessionId).map((r) => r.type)).toEqual([
      "voice_session.completed",
    ])
    // a wrong secret does not verify
    expect(() => verify(`whsec_${Buffer.alloc(32, 7).toString("base64")}`, delivered)).toThrow()

    const client = await s.client(apiKey)
    const deliveries = () =>
      Effect.runPromise(
        client.webhookEndpoints.deliveries({ path: { id: endpoint.endpoint_id }, urlParams: {} }),
      )
    // the receiver has answered; the dispatcher records that right after
    await eventually(async () => (await deliveries()).data.data[0]?.status === "delivered")
    const listed = await deliveries()
    expect(listed.data.data.map((d) => [d.event_type, d.status, d.event_id])).toEqual([
      ["voice_session.completed", "delivered", event.id],
    ])
    expect(listed.data.data[0].attempts).toMatchObject([{ attempt: 1, status_code: 200, error: null }])
  })

  test("a failing, hanging, disconnecting receiver gets every event in order, at least once, ids stable", async () => {
    const { apiKey, orgId, agentId } = await activeSession(s)
    const endpoint = await createEndpoint(s, apiKey, receiver.url)
    const client = await s.client(apiKey)
    // The session's started event meets each failure in turn; its completion is sent meanwhile.
    receiver.script.push("fail", "hang", "close", "fail")
    const started = await Effect.runPromise(
      client.sessions.start({
        payload: {
          agent_id: agentId as AgentId,
          participant: { identity: "u" },
        },
      }),
    )
    const id = started.data.session_id as string
    expect((await complete(s, apiKey, id)).status).toBe(200)
    const sent = () => receiver.received.filter((r) => r.sessionId === id)
    await eventually(() => sent().filter((r) => r.behaviour === "ok").length === 2)
    expect(sent().map((r) => [r.type, r.behaviour])).toEqual([
      ["voice_session.started", "fail"],
      ["voice_session.started", "hang"],
      ["voice_session.started", "close"],
      ["voice_session.started", "fail"],
      ["voice_session.started", "ok"],
      ["voice_session.completed", "ok"],
    ])
    // every attempt of a message carries its id and verifies
    expect(
      new Set(
        sent()
          .slice(0, 5)
          .map((r) => r.headers["webhook-id"]),
      ).size,
    ).toBe(1)
    expect(sent()[5].headers["webhook-id"]).not.toBe(sent()[0].headers["webhook-id"])
    for (const r of sent()) verify(endpoint.secret, r)

    // each attempt is recorded: the 500s, the timeout, the dropped connection, the success
    const listed = async () =>
      (
        await Effect.runPromise(
          client.webhookEndpoints.deliveries({
            path: { id: endpoint.endpoint_id },
            urlParams: { limit: 100 },
          }),
        )
      ).data.data.filter((d) => d.session_id === id)
    await eventually(async () => (await listed()).every((d) => d.status === "delivered"))
    const [completedDelivery, startedDelivery] = await listed()
    expect(completedDelivery.attempts.map((a) => a.status_code)).toEqual([200])
    expect(startedDelivery.attempts.map((a) => [a.status_code, a.error?.split(":")[0] ?? null])).toEqual([
      [500, "HTTP 500"],
      [null, "timed out after 1000 ms"],
      [null, expect.any(String)],
      [500, "HTTP 500"],
      [200, null],
    ])
    expect(startedDelivery.attempts[2].error).toMatch(/ECONNRESET|closed|socket/i)
    expect(startedDelivery.attempts[0].error).toBe("HTTP 500: receiver is down")
    // the first session started before the endpoint existed: only this session's two events were written
    expect(
      await count(s, (sql) => sql`SELECT count(*)::int AS n FROM outbound_events WHERE org_id = ${orgId}`),
    ).toBe(2)
  })

  test("after a rotation both the new and the replaced secret verify; GET never shows a secret", async () => {
    const { apiKey, agentId } = await activeSession(s)
    const endpoint = await createEndpoint(s, apiKey, receiver.url, ["voice_session.started"])
    const client = await s.client(apiKey)
    const rotated = await Effect.runPromise(
      client.webhookEndpoints.rotateSecret({ path: { id: endpoint.endpoint_id } }),
    )
    expect(rotated.data.secret).not.toBe(endpoint.secret)
    expect(rotated.data.previous_secret_expires_at).toBeGreaterThan(rotated.data.updated_at + 86_000)
    const got = await Effect.runPromise(client.webhookEndpoints.get({ path: { id: endpoint.endpoint_id } }))
    expect(JSON.stringify(got)).not.toContain("whsec_")
    const started = await Effect.runPromise(
      client.sessions.start({ payload: { agent_id: agentId as AgentId, participant: { identity: "u" } } }),
    )
    const sessionId = started.data.session_id as string
    await eventually(() => receiver.acknowledged().some((r) => r.sessionId === sessionId))
    const delivered = receiver.acknowledged().find((r) => r.sessionId === sessionId)!
    expect(delivered.headers["webhook-signature"].split(" ").length).toBe(2)
    expect(verify(rotated.data.secret, delivered).type).toBe("voice_session.started")
    expect(verify(endpoint.secret, delivered).type).toBe("voice_session.started")
  })

  test("events of another organization never reach an endpoint", async () => {
    const mine = await activeSession(s)
    await createEndpoint(s, mine.apiKey, receiver.url)
    const other = await activeSession(s)
    expect((await complete(s, other.apiKey, other.sessionId)).status).toBe(200)
    expect((await complete(s, mine.apiKey, mine.sessionId)).status).toBe(200)
    await eventually(() => receiver.acknowledged().some((r) => r.sessionId === mine.sessionId))
    // nothing was even written for the other organization, which has no endpoint
    expect(
      await count(
        s,
        (sql) => sql`SELECT count(*)::int AS n FROM outbound_events WHERE org_id = ${other.orgId}`,
      ),
    ).toBe(0)
    expect(receiver.received.some((r) => r.sessionId === other.sessionId)).toBe(false)
  })

  test("an endpoint failing for the whole retry window is disabled and says why; redelivery works", async () => {
    const failing = await startReceiver(Array(1000).fill("fail"))
    try {
      const { apiKey, agentId } = await activeSession(s)
      const endpoint = await createEndpoint(s, apiKey, failing.url)
      const client = await s.client(apiKey)
      const started = await Effect.runPromise(
        client.sessions.start({ payload: { agent_id: agentId as AgentId, participant: { identity: "u" } } }),
      )
      const id = { path: { id: endpoint.endpoint_id as EndpointId } }
      const deliveries = () => Effect.runPromise(client.webhookEndpoints.deliveries({ ...id, urlParams: {} }))
      // the first failure is recorded (the streak has begun)
      await eventually(async () => ((await deliveries()).data.data[0]?.attempts.length ?? 0) >= 1)
      // 24 hours pass: the streak and the delivery's retries began a day ago (one transaction, so an
      // attempt recorded meanwhile sees both or neither)
      await s.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql.withTransaction(
            // in the order the dispatcher's record locks them: delivery, then endpoint
            Effect.all([
              sql`UPDATE webhook_deliveries SET retry_from = now() - interval '25 hours'
                WHERE endpoint_id = ${endpoint.endpoint_id}`,
              sql`UPDATE webhook_endpoints SET failing_since = now() - interval '25 hours'
                WHERE id = ${endpoint.endpoint_id}`,
            ]),
          ),
        ),
      )
      await eventually(async () => !(await Effect.runPromise(client.webhookEndpoints.get(id))).data.enabled)
      const disabled = (await Effect.runPromise(client.webhookEndpoints.get(id))).data
      expect(disabled.disabled_reason).toMatch(
        /^Disabled at .*: every delivery since .* \(24 h\) failed; the last: HTTP 500/,
      )
      const [delivery] = (await deliveries()).data.data
      expect(delivery).toMatchObject({
        status: "failed",
        next_attempt_at: null,
        session_id: started.data.session_id,
      })
      expect(delivery.attempts.every((a) => a.status_code === 500)).toBe(true)

      // enabled again, the given-up delivery is sent again on request, with its webhook-id
      const enabled = await Effect.runPromise(
        client.webhookEndpoints.update({ ...id, payload: { enabled: true } }),
      )
      expect(enabled.data).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null })
      failing.script.splice(0)
      const redelivered = await Effect.runPromise(
        client.webhookEndpoints.redeliver({
          path: { id: endpoint.endpoint_id, delivery_id: delivery.delivery_id },
        }),
      )
      // answered once it is due again; the dispatcher may have delivered it already
      expect(["pending", "delivered"]).toContain(redelivered.data.status)
      expect(redelivered.data.event_id).toBe(delivery.event_id)
      await eventually(() => failing.acknowledged().length === 1)
      expect(failing.acknowledged()[0].headers["webhook-id"]).toBe(delivery.event_id)
      verify(endpoint.secret, failing.acknowledged()[0])
    } finally {
      failing.stop()
    }
  })
})

test("a server stopped between the complete and the delivery delivers after a restart", async () => {
  const databaseUrl = await freshDatabaseUrl()
  const receiver = await startReceiver()
  let a: TestServer | undefined = await serverOn(databaseUrl)
  let b: TestServer | undefined
  try {
    const { apiKey, sessionId } = await activeSession(a)
    const endpoint = await createEndpoint(a, apiKey, receiver.url, ["voice_session.completed"])
    // the receiver takes the first attempt and never answers it while A runs
    receiver.script.push("hold")
    expect((await complete(a, apiKey, sessionId)).status).toBe(200)
    await eventually(() => receiver.received.length === 1)
    await a.dispose()
    a = undefined
    receiver.release()
    b = await serverOn(databaseUrl)
    await eventually(() => receiver.acknowledged().length === 1)
    const [first, again] = receiver.received
    expect(again.headers["webhook-id"]).toBe(first.headers["webhook-id"])
    expect(verify(endpoint.secret, again).type).toBe("voice_session.completed")
    const client = await b.client(apiKey)
    const deliveries = () =>
      Effect.runPromise(
        client.webhookEndpoints.deliveries({ path: { id: endpoint.endpoint_id }, urlParams: {} }),
      )
    // acknowledged; B records that right after
    await eventually(async () => (await deliveries()).data.data[0].status === "delivered")
    const listed = await deliveries()
    expect(listed.data.data[0].attempts.map((x) => x.error ?? x.status_code)).toEqual([
      "interrupted: the server stopped during the attempt",
      200,
    ])
  } finally {
    await a?.dispose()
    await b?.dispose()
    receiver.stop()
  }
})

test("two instances on one database deliver each event once, whichever wrote it", async () => {
  const databaseUrl = await freshDatabaseUrl()
  const receiver = await startReceiver()
  const [a, b] = await Promise.all([serverOn(databaseUrl), serverOn(databaseUrl)])
  try {
    const { apiKey, agentId } = await activeSession(a)
    const endpoint = await createEndpoint(a, apiKey, receiver.url)
    const sessions = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const on = i % 2 === 0 ? a : b
        const client = await on.client(apiKey)
        const started = await Effect.runPromise(
          client.sessions.start({
            payload: { agent_id: agentId as AgentId, participant: { identity: "u" } },
          }),
        )
        const id = started.data.session_id as string
        expect((await complete(on, apiKey, id)).status).toBe(200)
        return id
      }),
    )
    const mine = () => receiver.received.filter((r) => sessions.includes(r.sessionId))
    await eventually(() => mine().length >= 12)
    // the claims never overlap: no message arrived twice
    expect(new Set(mine().map((r) => r.headers["webhook-id"])).size).toBe(mine().length)
    for (const id of sessions)
      expect(
        mine()
          .filter((r) => r.sessionId === id)
          .map((r) => r.type),
      ).toEqual(["voice_session.started", "voice_session.completed"])
    for (const r of mine()) verify(endpoint.secret, r)
  } finally {
    await Promise.all([a.dispose(), b.dispose()])
    receiver.stop()
  }
})
