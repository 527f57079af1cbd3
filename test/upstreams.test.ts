import { describe, expect, test } from "bun:test"
import { Effect, Either, Layer, Logger, Option, Redacted } from "effect"
import { AppConfig, type AppConfigShape } from "../src/Config.ts"
import { Gemini } from "../src/Gemini.ts"
import { LiveKit } from "../src/LiveKit.ts"
import { LocalUpstreams, UpstreamsLive } from "../src/Upstreams.ts"

const upstreams = (overrides: Partial<AppConfigShape>, logs: Array<string> = []) =>
  UpstreamsLive.pipe(
    Layer.provide(AppConfig.layer(overrides)),
    Layer.provide(
      Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ message }) => logs.push((Array.isArray(message) ? message : [message]).join(" "))),
      ),
    ),
  )

describe("UpstreamsLive", () => {
  test("without credentials it runs both local upstreams and stops them with the layer", async () => {
    const logs: Array<string> = []
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const livekit = yield* LiveKit
        const gemini = yield* Gemini
        const local = yield* LocalUpstreams
        yield* livekit.createRoom({
          name: "voice_x",
          emptyTimeoutSeconds: 60,
          maxParticipants: 4,
          metadata: "{}",
        })
        const roomSeen = local.livekit?.rooms.has("voice_x")
        const jwt = yield* livekit.participantToken({ room: "voice_x", identity: "u", ttlSeconds: 60 })
        const live = yield* gemini.mintLiveToken({
          systemInstruction: "hi",
          voiceName: "Puck",
          ttlSeconds: 60,
        })
        const json = yield* gemini.generateJson({
          model: "gemini-3.5-flash-lite",
          prompt: "user: I would rate it 4 out of 5",
          responseSchema: { type: "object", properties: { rating: { type: "number", nullable: true } } },
        })
        const hook = yield* Effect.promise(() =>
          local.livekit!.signWebhook({ event: "room_finished", room: { name: "voice_x" } }),
        )
        const event = yield* livekit.verifyWebhook(hook.body, hook.authorization)
        return { local, roomSeen, jwt, live, json, event }
      }).pipe(Effect.provide(upstreams({}, logs))),
    )
    expect(result.roomSeen).toBe(true)
    expect(result.jwt.split(".")).toHaveLength(3)
    expect(result.live.token).toStartWith("auth_tokens/")
    expect(result.live.url).toStartWith("ws://127.0.0.1:")
    expect(JSON.parse(result.json.text)).toEqual({ rating: 4 })
    expect(result.event).toMatchObject({ event: "room_finished", room: { name: "voice_x" } })
    expect(logs.filter((line) => line.includes("local LiveKit upstream at http://127.0.0.1:"))).toHaveLength(
      1,
    )
    expect(logs.filter((line) => line.includes("local Gemini upstream at http://127.0.0.1:"))).toHaveLength(1)
    // The layer's scope has closed: nothing is listening any more.
    for (const url of [result.local.livekit?.url, result.local.gemini?.url]) {
      expect(
        await fetch(`${url}/`).then(
          () => "up",
          () => "down",
        ),
      ).toBe("down")
    }
  })

  test("with credentials no local upstream starts", async () => {
    const local = await Effect.runPromise(
      LocalUpstreams.pipe(
        Effect.provide(
          upstreams({
            livekitUrl: Option.some("wss://example.livekit.cloud"),
            livekitApiKey: Option.some("key"),
            livekitApiSecret: Option.some(Redacted.make("secret")),
            geminiApiKey: Option.some(Redacted.make("gemini-key")),
          }),
        ),
      ),
    )
    expect(local).toEqual({ livekit: undefined, gemini: undefined })
  })

  test("REQUIRE_REAL_UPSTREAMS without credentials fails naming the variables", async () => {
    const result = await Effect.runPromise(
      Effect.either(Effect.provide(LiveKit, upstreams({ requireRealUpstreams: true }))),
    )
    expect(Either.isLeft(result) && result.left.message).toBe(
      "REQUIRE_REAL_UPSTREAMS is true but LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, GEMINI_API_KEY are not set",
    )
    const geminiOnly = await Effect.runPromise(
      Effect.either(
        Effect.provide(
          LiveKit,
          upstreams({
            requireRealUpstreams: true,
            livekitUrl: Option.some("wss://example.livekit.cloud"),
            livekitApiKey: Option.some("key"),
            livekitApiSecret: Option.some(Redacted.make("secret")),
          }),
        ),
      ),
    )
    expect(Either.isLeft(geminiOnly) && geminiOnly.left.message).toBe(
      "REQUIRE_REAL_UPSTREAMS is true but GEMINI_API_KEY is not set",
    )
  })

  test("half a LiveKit configuration is an error, not a fallback", async () => {
    const result = await Effect.runPromise(
      Effect.either(
        Effect.provide(LiveKit, upstreams({ livekitUrl: Option.some("wss://example.livekit.cloud") })),
      ),
    )
    expect(Either.isLeft(result) && result.left.message).toBe(
      "LiveKit configuration is incomplete: LIVEKIT_API_KEY, LIVEKIT_API_SECRET not set",
    )
  })
})
