import { afterAll, afterEach, describe, expect, test } from "bun:test"
import { Effect, Either, Redacted } from "effect"
import { RoomServiceClient, TokenVerifier } from "livekit-server-sdk"
import { LiveKit, type LiveKitSettings } from "../src/LiveKit.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { startLocalLiveKit } from "../src/Local/LiveKitServer.ts"
import { eventually } from "./support/wait.ts"

const local = startLocalLiveKit({ webhookApiKey: "hook-key", webhookApiSecret: "hook-secret-0123456789" })
afterAll(() => local.stop())
afterEach(() => local.clear())

const settings = (overrides: Partial<LiveKitSettings> = {}): LiveKitSettings => ({
  url: local.url,
  apiKey: local.apiKey,
  apiSecret: Redacted.make(local.apiSecret),
  webhookApiKey: local.webhookApiKey,
  webhookApiSecret: Redacted.make(local.webhookApiSecret),
  timeoutMs: 2_000,
  ...overrides,
})

const run = <A, E>(
  use: (livekit: LiveKit["Type"]) => Effect.Effect<A, E>,
  overrides?: Partial<LiveKitSettings>,
) =>
  Effect.runPromise(
    Effect.either(LiveKit.pipe(Effect.flatMap(use), Effect.provide(LiveKit.layer(settings(overrides))))),
  )

/** A failed createRoom deletes the room it may have created, in the background: wait for that answer,
 * so it does not land in the next test's requests. */
const lateDeleteAnswered = () =>
  eventually(() => local.requests.some((r) => r.method === "DeleteRoom" && r.status !== 0))

const room = (name: string) => ({
  name,
  emptyTimeoutSeconds: 600,
  maxParticipants: 4,
  metadata: '{"session_id":"s1"}',
})

describe("LiveKit over the local server", () => {
  test("hands clients the ws form of the URL", () => {
    expect(LiveKit.make(settings()).clientUrl).toBe(local.url.replace("http://", "ws://"))
    expect(LiveKit.make(settings({ url: "https://x.livekit.cloud" })).clientUrl).toBe("wss://x.livekit.cloud")
  })

  test("creates and deletes a room", async () => {
    const created = await run((lk) => lk.createRoom(room("voice_a")))
    expect(Either.isRight(created)).toBe(true)
    expect(local.rooms.get("voice_a")).toMatchObject({
      name: "voice_a",
      emptyTimeout: 600,
      maxParticipants: 4,
      metadata: '{"session_id":"s1"}',
    })
    const deleted = await run((lk) => lk.deleteRoom("voice_a"))
    expect(Either.isRight(deleted)).toBe(true)
    expect(local.rooms.has("voice_a")).toBe(false)
    // A second delete finds nothing to do and still succeeds.
    expect(Either.isRight(await run((lk) => lk.deleteRoom("voice_a")))).toBe(true)
  })

  test("signs a participant token for exactly that room", async () => {
    const before = Math.floor(Date.now() / 1000)
    const result = await run((lk) =>
      lk.participantToken({ room: "voice_b", identity: "user-1", name: "Ada", ttlSeconds: 900 }),
    )
    const after = Math.floor(Date.now() / 1000)
    const jwt = Either.getOrThrow(result)
    const claims = await new TokenVerifier(local.apiKey, local.apiSecret).verify(jwt)
    expect(claims.sub).toBe("user-1")
    expect(claims.name).toBe("Ada")
    expect(claims.video).toEqual({
      room: "voice_b",
      roomJoin: true,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
    })
    // Signed at some instant of the call, valid for the ttl from then.
    expect(claims.exp ?? 0).toBeGreaterThanOrEqual(before + 899)
    expect(claims.exp ?? 0).toBeLessThanOrEqual(after + 901)
  })

  test("answers the SDK's ListRooms and ListParticipants", async () => {
    const client = new RoomServiceClient(local.url, local.apiKey, local.apiSecret)
    await client.createRoom({ name: "voice_l", emptyTimeout: 60, maxParticipants: 2 })
    await local.signWebhook({
      event: "participant_joined",
      room: { name: "voice_l" },
      participant: { identity: "user-1", name: "Ada" },
    })
    const listed = await client.listRooms(["voice_l"])
    expect(listed.map((r) => [r.name, r.emptyTimeout, r.maxParticipants, r.numParticipants])).toEqual([
      ["voice_l", 60, 2, 1],
    ])
    const participants = await client.listParticipants("voice_l")
    expect(participants.map((p) => [p.identity, p.name])).toEqual([["user-1", "Ada"]])
    await client.deleteRoom("voice_l")
  })

  test("a wrong API secret is a LiveKitError", async () => {
    const result = await run((lk) => lk.createRoom(room("voice_c")), {
      apiSecret: Redacted.make("not-the-secret"),
    })
    expect(Either.isLeft(result) && result.left._tag).toBe("LiveKitError")
    expect(Either.isLeft(result) && result.left.message).toContain("401")
    expect(Either.isLeft(result) && result.left.message).not.toContain("not-the-secret")
    expect(local.rooms.has("voice_c")).toBe(false)
    await lateDeleteAnswered()
  })

  test("a slow upstream times out quickly", async () => {
    const hold = makeHold()
    local.inject({ method: "CreateRoom", hold })
    const result = await run((lk) => lk.createRoom(room("voice_d")), { timeoutMs: 100 })
    expect(Either.isLeft(result) && result.left.message).toContain("timed out")
    // The upstream never answered: only the timeout can have ended the call.
    expect(local.requests).toEqual([{ method: "CreateRoom", status: 0 }])
    // Once the abandoned request settles, the room it may have created is deleted.
    hold.release()
    await lateDeleteAnswered()
  })

  test("an upstream 500 is a LiveKitError", async () => {
    local.inject({ method: "CreateRoom", status: 500, times: 1 })
    const result = await run((lk) => lk.createRoom(room("voice_e")))
    expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "LiveKitError", status: 500 })
    await lateDeleteAnswered()
    expect(local.requests).toEqual([
      { method: "CreateRoom", status: 500 },
      { method: "DeleteRoom", status: 404 },
    ])
  })
})

describe("LiveKit webhooks", () => {
  const received: Array<{ body: string; authorization: string | null; contentType: string | null }> = []
  const receiver = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      received.push({
        body: await request.text(),
        authorization: request.headers.get("authorization"),
        contentType: request.headers.get("content-type"),
      })
      return new Response("ok")
    },
  })
  afterAll(() => receiver.stop(true))
  afterEach(() => {
    received.length = 0
  })

  const deliver = async () => {
    const response = await local.sendWebhook(`http://127.0.0.1:${receiver.port}/hook`, {
      event: "participant_joined",
      id: "EV_1",
      createdAt: 1_700_000_000,
      room: { name: "voice_f", sid: "RM_f" },
      participant: { identity: "user-1", name: "Ada" },
    })
    expect(response.status).toBe(200)
    return received[0]
  }

  test("a signed webhook verifies", async () => {
    const hook = await deliver()
    expect(hook.contentType).toBe("application/webhook+json")
    const result = await run((lk) => lk.verifyWebhook(hook.body, hook.authorization ?? undefined))
    expect(Either.getOrThrow(result)).toMatchObject({
      id: "EV_1",
      event: "participant_joined",
      createdAt: 1_700_000_000,
      room: { name: "voice_f", sid: "RM_f" },
      participant: { identity: "user-1", name: "Ada" },
    })
  })

  test("a tampered body, a wrong secret or no header fails verification", async () => {
    const hook = await deliver()
    const tampered = hook.body.replace("user-1", "user-2")
    const attempts = [
      await run((lk) => lk.verifyWebhook(tampered, hook.authorization ?? undefined)),
      await run((lk) => lk.verifyWebhook(hook.body, hook.authorization ?? undefined), {
        webhookApiSecret: Redacted.make("wrong-secret"),
      }),
      await run((lk) => lk.verifyWebhook(hook.body, undefined)),
    ]
    for (const result of attempts) {
      expect(Either.isLeft(result) && result.left._tag).toBe("WebhookVerificationError")
    }
  })
})
