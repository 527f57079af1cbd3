import { afterAll, afterEach, describe, expect, test } from "bun:test"
import { Effect, Either, Redacted } from "effect"
import { Gemini, type GeminiSettings, liveConstrainedUrl } from "../src/Gemini.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { startLocalGemini } from "../src/Local/GeminiServer.ts"

const local = startLocalGemini()
afterAll(() => local.stop())
afterEach(() => local.clear())

const settings = (overrides: Partial<GeminiSettings> = {}): GeminiSettings => ({
  apiKey: Redacted.make(local.apiKey),
  baseUrl: local.url,
  liveModel: "gemini-live-test",
  timeoutMs: 1_000,
  extractionBudgetMs: 1_500,
  retryBaseDelayMs: 20,
  ...overrides,
})

const run = <A, E>(
  use: (gemini: Gemini["Type"]) => Effect.Effect<A, E>,
  overrides?: Partial<GeminiSettings>,
) =>
  Effect.runPromise(
    Effect.either(Gemini.pipe(Effect.flatMap(use), Effect.provide(Gemini.layer(settings(overrides))))),
  )

const tokenSpec = {
  systemInstruction: "You are Parley.",
  voiceName: "Kore",
  languageCode: "de-DE",
  ttlSeconds: 600,
}

const TRANSCRIPT = [
  "Transcript:",
  "agent: Which plan are you on, basic, pro or enterprise? And how many seats?",
  "user: We are on the Pro plan with 25 seats.",
  "agent: Would you renew?",
  "user: Yes, and the renewal date is 2025-03-01.",
].join("\n")

const SCHEMA = {
  type: "object",
  properties: {
    plan: { type: "string", enum: ["basic", "pro", "enterprise"], nullable: true },
    seats: { type: "integer", nullable: true },
    renew: { type: "boolean", nullable: true },
    renewal_date: { type: "string", format: "date", nullable: true },
    region: { type: "string", enum: ["emea", "apac"], nullable: true },
    budget: { type: "number", nullable: true, minimum: 0 },
    tags: { type: "array", items: { type: "string", enum: ["pro", "seats", "urgent"] } },
  },
  required: ["plan", "seats", "renew", "renewal_date", "region", "budget", "tags"],
}

const extract = {
  model: "gemini-extract-test",
  systemInstruction: "Extract.",
  prompt: TRANSCRIPT,
  responseSchema: SCHEMA,
}

describe("Gemini ephemeral tokens", () => {
  test("mints a single-use v1alpha token with the live config locked", async () => {
    const before = Date.now()
    const result = Either.getOrThrow(await run((gemini) => gemini.mintLiveToken(tokenSpec)))
    const after = Date.now()
    expect(result.token).toStartWith("auth_tokens/")
    expect(result.url).toBe(
      `${local.url.replace("http://", "ws://")}/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained?access_token=${encodeURIComponent(result.token as string)}`,
    )
    const [request] = local.requests
    expect(request).toMatchObject({ method: "auth_tokens", version: "v1alpha", status: 200 })
    const body = request.body as {
      uses: number
      expireTime: string
      newSessionExpireTime: string
      bidiGenerateContentSetup: unknown
      fieldMask?: unknown
    }
    expect(body.uses).toBe(1)
    // Minted at some instant of the call, valid for the ttl from then.
    expect(Date.parse(body.expireTime)).toBeWithin(before + 600_000, after + 600_001)
    // A client may open its one session any time within the ttl window.
    expect(body.newSessionExpireTime).toBe(body.expireTime)
    expect(body.bidiGenerateContentSetup).toEqual({
      model: "models/gemini-live-test",
      generationConfig: {
        responseModalities: ["AUDIO"],
        speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: "Kore" } }, languageCode: "de-DE" },
      },
      systemInstruction: { parts: [{ text: "You are Parley." }], role: "user" },
      inputAudioTranscription: {},
      outputAudioTranscription: {},
    })
    // No field mask: the whole setup comes from the token, whatever the client sends.
    expect(body.fieldMask).toBeUndefined()
  })

  test("the token expires with the ttl", async () => {
    const before = Date.now()
    await run((gemini) => gemini.mintLiveToken({ ...tokenSpec, ttlSeconds: 90 }))
    const after = Date.now()
    const body = local.requests[0].body as { expireTime: string; newSessionExpireTime: string }
    expect(Date.parse(body.expireTime)).toBeWithin(before + 90_000, after + 90_001)
    expect(body.newSessionExpireTime).toBe(body.expireTime)
  })

  test("an upstream failure is a GeminiEphemeralError without the key", async () => {
    local.inject({ method: "auth_tokens", status: 500 })
    const result = await run((gemini) => gemini.mintLiveToken(tokenSpec))
    expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "GeminiEphemeralError", status: 500 })
    expect(Either.isLeft(result) && result.left.message).not.toContain(local.apiKey)
  })

  test("a wrong API key is refused", async () => {
    const result = await run((gemini) => gemini.mintLiveToken(tokenSpec), { apiKey: Redacted.make("wrong") })
    expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "GeminiEphemeralError", status: 403 })
  })

  test("the live URL follows the base URL", () => {
    expect(liveConstrainedUrl(undefined)).toBe(
      "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained",
    )
    expect(liveConstrainedUrl("https://proxy.example/gemini/")).toStartWith("wss://proxy.example/gemini/ws/")
  })
})

describe("Gemini extraction", () => {
  test("returns schema-conforming JSON read off the user's lines", async () => {
    const text = Either.getOrThrow(await run((gemini) => gemini.generateJson(extract)))
    expect(JSON.parse(text)).toEqual({
      plan: "pro",
      seats: 25,
      renew: true,
      renewal_date: "2025-03-01",
      region: null,
      budget: null,
      tags: ["pro", "seats"],
    })
    const [request] = local.requests
    expect(request).toMatchObject({ method: "generateContent", model: "gemini-extract-test", status: 200 })
  })

  test("a 429 is retried and then succeeds", async () => {
    local.inject({ method: "generateContent", status: 429, times: 1 })
    const result = await run((gemini) => gemini.generateJson(extract))
    expect(Either.isRight(result)).toBe(true)
    expect(local.requests.map((r) => r.status)).toEqual([429, 200])
  })

  test("a persistent 503 fails within the budget", async () => {
    local.inject({ method: "generateContent", status: 503 })
    // Without a budget it would retry for longer than the test's timeout.
    const result = await run((gemini) => gemini.generateJson(extract), { extractionBudgetMs: 1_000 })
    expect(Either.isLeft(result) && result.left).toMatchObject({
      _tag: "GeminiExtractionError",
      retryable: true,
    })
    expect(local.requests.length).toBeGreaterThan(2)
  })

  test("a 400 is not retried", async () => {
    local.inject({ method: "generateContent", status: 400 })
    const result = await run((gemini) => gemini.generateJson(extract))
    expect(Either.isLeft(result) && result.left).toMatchObject({ status: 400, retryable: false })
    expect(local.requests.length).toBe(1)
  })

  test("a slow reply times out and is retried", async () => {
    const hold = makeHold()
    local.inject({ method: "generateContent", hold, times: 1 })
    const result = await run((gemini) => gemini.generateJson(extract), { extractionBudgetMs: 30_000 })
    expect(Either.isRight(result)).toBe(true)
    // The first call never answered: only its timeout can have ended it.
    expect(local.requests.map((r) => r.status)).toEqual([0, 200])
    hold.release()
  })

  test("a reply that is always slow fails within the budget", async () => {
    const hold = makeHold()
    local.inject({ method: "generateContent", hold })
    // No call ever answers: without a budget it would retry for longer than the test's timeout.
    const result = await run((gemini) => gemini.generateJson(extract), {
      timeoutMs: 100,
      extractionBudgetMs: 500,
    })
    expect(Either.isLeft(result) && result.left).toMatchObject({
      _tag: "GeminiExtractionError",
      retryable: true,
    })
    expect(local.requests.every((r) => r.status === 0)).toBe(true)
    hold.release()
  })

  test("malformed model output is handed back as-is", async () => {
    local.inject({ method: "generateContent", text: "Sure! Here you go: {plan: pro", times: 1 })
    const result = await run((gemini) => gemini.generateJson(extract))
    expect(Either.getOrThrow(result)).toBe("Sure! Here you go: {plan: pro")
  })
})
