/** POST /api/v1/voice/webhooks/livekit: LiveKit-signed events merged into session metadata (SPEC §9). */

import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { createHash } from "node:crypto"
import { Option, Redacted } from "effect"
import { AccessToken, type WebhookEventNames } from "livekit-server-sdk"
import { startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  completeSession,
  data,
  getSession,
  type Json,
  nowSeconds,
  sessionRow,
  TRANSCRIPT,
  UNKNOWN_ID,
  webhookEvents,
} from "./support/sessions.ts"

let s: TestServer
beforeAll(async () => {
  s = await startServer()
})
afterAll(() => s.dispose())

const PATH = "/api/v1/voice/webhooks/livekit"

interface Delivery {
  readonly body: string
  readonly authorization?: string | undefined
  readonly contentType?: string | undefined
}

const deliver = async ({ body, authorization, contentType = "application/webhook+json" }: Delivery) => {
  const headers: Record<string, string> = { "content-type": contentType }
  if (authorization !== undefined) headers.authorization = authorization
  const response = await s.fetchRaw(PATH, { method: "POST", headers, body })
  return { status: response.status, headers: response.headers, body: (await response.json()) as Json }
}

const eventId = () => `EV_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`

/** An event as the local LiveKit signs it (exactly as LiveKit does). */
const signed = (
  event: WebhookEventNames,
  room: string,
  extra: { id?: string; createdAt?: number; identity?: string } = {},
) =>
  s.livekit.signWebhook({
    event,
    id: extra.id ?? eventId(),
    createdAt: extra.createdAt,
    room: { name: room },
    participant: extra.identity === undefined ? undefined : { identity: extra.identity, name: "Alice" },
  })

const expectReceipt = (reply: Awaited<ReturnType<typeof deliver>>, handled: boolean) => {
  expect(reply.status).toBe(200)
  expect(Object.keys(reply.body).sort()).toEqual(["created_at", "data", "id", "object", "status"])
  expect(reply.body).toMatchObject({
    object: "webhook_receipt",
    status: "completed",
    data: { received: true, handled },
  })
  expect(reply.body.id).toBe(reply.headers.get("x-request-id") as string)
}

describe("handled events", () => {
  test("room_finished merges room metadata and never completes the session", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const room = `voice_${sessionId}`
    const sid = s.livekit.rooms.get(room)?.sid
    const id = eventId()
    const createdAt = nowSeconds() - 5
    const reply = await deliver(await signed("room_finished", room, { id, createdAt }))
    expectReceipt(reply, true)

    const row = await sessionRow(s, sessionId)
    expect(row?.status).toBe("active")
    expect(row?.metadata).toEqual({ livekit_room_finished_at: createdAt, livekit_room_sid: sid })
    expect(row?.completed_at).toBeNull()
    expect(await webhookEvents(s, id)).toEqual([
      expect.objectContaining({ event_id: id, event: "room_finished" }),
    ])
    const got = await getSession(s, apiKey, sessionId)
    expect(got.body.status).toBe("active")
    expect(data(got).metadata).toEqual(row?.metadata as Json)
  })

  test("participant_joined records the call start on the first join only; participant_left is recorded", async () => {
    const { sessionId } = await activeSession(s)
    const room = `voice_${sessionId}`
    const t0 = nowSeconds() - 60
    expectReceipt(
      await deliver(await signed("participant_joined", room, { createdAt: t0, identity: "u1" })),
      true,
    )
    expectReceipt(
      await deliver(await signed("participant_joined", room, { createdAt: t0 + 10, identity: "agent" })),
      true,
    )
    expectReceipt(
      await deliver(await signed("participant_left", room, { createdAt: t0 + 30, identity: "u1" })),
      true,
    )

    const row = await sessionRow(s, sessionId)
    expect(row?.status).toBe("active")
    expect(row?.metadata).toMatchObject({
      livekit_room_sid: s.livekit.rooms.get(room)?.sid,
      livekit_call_started_at: t0,
      livekit_last_participant_joined_at: t0 + 10,
      livekit_last_participant_left_at: t0 + 30,
      livekit_last_participant_identity: "u1",
    })
  })

  test("events for a completed session merge metadata without touching the outcome", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    expect((await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })).status).toBe(200)
    const before = await sessionRow(s, sessionId)
    const createdAt = nowSeconds()
    expectReceipt(await deliver(await signed("room_finished", `voice_${sessionId}`, { createdAt })), true)
    const after = await sessionRow(s, sessionId)
    expect(after).toMatchObject({
      status: "completed",
      results: before?.results as Json,
      transcript: before?.transcript,
      completed_at: before?.completed_at as Date,
    })
    expect(after?.metadata).toMatchObject({ livekit_room_finished_at: createdAt })
  })

  test("a redelivery of the same event id is not handled again and changes nothing", async () => {
    const { sessionId } = await activeSession(s)
    const room = `voice_${sessionId}`
    const t0 = nowSeconds() - 100
    const first = await signed("participant_joined", room, { createdAt: t0, identity: "u1" })
    expectReceipt(await deliver(first), true)
    const before = await sessionRow(s, sessionId)

    expectReceipt(await deliver(first), false)
    // A redelivery is a new signature over the same event: still a duplicate.
    const id = (JSON.parse(first.body) as { id: string }).id
    expectReceipt(
      await deliver(await signed("participant_joined", room, { id, createdAt: t0 + 50, identity: "u2" })),
      false,
    )
    expect(await sessionRow(s, sessionId)).toEqual(before)
    expect(await webhookEvents(s, id)).toHaveLength(1)
  })

  test("application/json is accepted as well as application/webhook+json", async () => {
    const { sessionId } = await activeSession(s)
    const reply = await deliver({
      ...(await signed("room_finished", `voice_${sessionId}`)),
      contentType: "application/json",
    })
    expectReceipt(reply, true)
    // The local LiveKit's own sender (application/webhook+json, bare JWT) works end to end.
    const sent = await s.livekit.sendWebhook(`${s.baseUrl}${PATH}`, {
      event: "participant_joined",
      room: { name: `voice_${sessionId}` },
      participant: { identity: "u9" },
    })
    expect(sent.status).toBe(200)
    expect(JSON.parse(sent.body).data).toEqual({ received: true, handled: true })
  })
})

describe("events that are not ours", () => {
  test("unknown rooms and unknown events → 200 handled false, nothing recorded", async () => {
    const { sessionId } = await activeSession(s)
    const before = await sessionRow(s, sessionId)
    const cases: Array<[WebhookEventNames, string]> = [
      ["room_finished", `voice_${UNKNOWN_ID}`], // no such session
      ["room_finished", "lobby"], // not a session room
      ["room_finished", `voice_${sessionId}_x`],
      ["room_started", `voice_${sessionId}`], // an event we do not track
      ["track_published", `voice_${sessionId}`],
      ["egress_started", `voice_${sessionId}`],
    ]
    for (const [event, room] of cases) {
      const id = eventId()
      const reply = await deliver(await signed(event, room, { id }))
      expectReceipt(reply, false)
      expect(await webhookEvents(s, id)).toHaveLength(0)
    }
    expect(await sessionRow(s, sessionId)).toEqual(before)
  })
})

describe("verification", () => {
  test("bad signature, tampered body, missing or wrong Authorization → 401 webhook_verification_failed", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const before = await sessionRow(s, sessionId)
    const good = await signed("room_finished", `voice_${sessionId}`, { createdAt: 1_700_000_000 })

    // Signed with the right key name but another secret.
    const forged = new AccessToken(s.livekit.webhookApiKey, "not-the-secret-not-the-secret-32", { ttl: "5m" })
    forged.sha256 = createHash("sha256").update(good.body).digest("base64")
    // Signed with the right secret, over another body.
    const otherBody = new AccessToken(s.livekit.webhookApiKey, s.livekit.webhookApiSecret, { ttl: "5m" })
    otherBody.sha256 = createHash("sha256").update("{}").digest("base64")
    // Expired.
    const expired = new AccessToken(s.livekit.webhookApiKey, s.livekit.webhookApiSecret, { ttl: -60 })
    expired.sha256 = createHash("sha256").update(good.body).digest("base64")

    const tampered = good.body.replace("1700000000", "1700000001")
    expect(tampered).not.toBe(good.body)

    const cases: Array<[string, Delivery]> = [
      ["forged signature", { body: good.body, authorization: await forged.toJwt() }],
      ["digest of another body", { body: good.body, authorization: await otherBody.toJwt() }],
      ["expired token", { body: good.body, authorization: await expired.toJwt() }],
      ["tampered body", { body: tampered, authorization: good.authorization }],
      ["missing Authorization", { body: good.body }],
      ["garbage Authorization", { body: good.body, authorization: "not-a-jwt" }],
      ["an API key instead", { body: good.body, authorization: `Bearer ${apiKey}` }],
      ["empty body", { body: "", authorization: good.authorization }],
    ]
    for (const [label, delivery] of cases) {
      const reply = await deliver(delivery)
      expect({ label, status: reply.status }).toEqual({ label, status: 401 })
      expect(reply.body.error).toMatchObject({
        type: "authentication_error",
        code: "webhook_verification_failed",
        request_id: reply.headers.get("x-request-id") as string,
      })
      expect(JSON.stringify(reply.body)).not.toContain(s.livekit.webhookApiSecret)
    }
    expect(await sessionRow(s, sessionId)).toEqual(before)
    expect(await webhookEvents(s, (JSON.parse(good.body) as { id: string }).id)).toHaveLength(0)
    // The untampered delivery still works afterwards.
    expectReceipt(await deliver(good), true)
  })

  test("the route needs no API key (and takes none)", async () => {
    const { sessionId } = await activeSession(s)
    const hook = await signed("room_finished", `voice_${sessionId}`)
    const reply = await deliver(hook) // no API key anywhere
    expectReceipt(reply, true)
    const wrongMethod = await s.fetchRaw(PATH, { method: "GET" })
    expect(wrongMethod.status).toBe(405)
  })
})

describe("webhook credentials", () => {
  test("LIVEKIT_WEBHOOK_API_KEY/SECRET drive verification with the local LiveKit too, which signs with them", async () => {
    const webhookSecret = "configured-webhook-secret-0123456789"
    const configured = await startServer({
      livekitWebhookApiKey: Option.some("configured-webhook-key"),
      livekitWebhookApiSecret: Option.some(Redacted.make(webhookSecret)),
    })
    try {
      expect(configured.livekit.webhookApiKey).toBe("configured-webhook-key")
      expect(configured.livekit.webhookApiSecret).toBe(webhookSecret)
      const { sessionId } = await activeSession(configured)
      const room = { name: `voice_${sessionId}` }
      const url = `${configured.baseUrl}${PATH}`

      // Signed by hand, as a real LiveKit signs: a JWT of the given credentials over the body's digest.
      const body = JSON.stringify({ event: "room_finished", id: eventId(), createdAt: "1700000000", room })
      const post = async (apiKey: string, secret: string) => {
        const token = new AccessToken(apiKey, secret, { ttl: "5m" })
        token.sha256 = createHash("sha256").update(body).digest("base64")
        const response = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/webhook+json", authorization: await token.toJwt() },
          body,
        })
        return { status: response.status, body: (await response.json()) as Json }
      }

      const byHand = await post("configured-webhook-key", webhookSecret)
      expect(byHand.status).toBe(200)
      expect(byHand.body.data).toEqual({ received: true, handled: true })
      expect((await sessionRow(configured, sessionId))?.metadata).toMatchObject({
        livekit_room_finished_at: 1_700_000_000,
      })

      // The local LiveKit's own deliveries are signed with them as well.
      const sent = await configured.livekit.sendWebhook(url, { event: "participant_joined", room })
      expect(sent.status).toBe(200)

      // The room-service credentials are not the webhook credentials any more.
      const refused = await post(configured.livekit.apiKey, configured.livekit.apiSecret)
      expect(refused.status).toBe(401)
      expect(refused.body.error).toMatchObject({ code: "webhook_verification_failed" })
    } finally {
      await configured.dispose()
    }
  })
})
