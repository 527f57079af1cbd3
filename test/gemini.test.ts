import { afterAll, afterEach, describe, expect, test } from "bun:test"
import { Effect, Either, Redacted } from "effect"
import { Gemini, type GeminiSettings, liveConstrainedUrl, takesLanguageCode } from "../src/Gemini.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { startLocalGemini } from "../src/Local/GeminiServer.ts"

const local = startLocalGemini()
afterAll(() => local.stop())
afterEach(() => local.clear())

const settings = (overrides: Partial<GeminiSettings> = {}): GeminiSettings => ({
  apiKey: Redacted.make(local.apiKey),
  baseUrl: local.url,
  liveModel: "gemini-3.8-live",
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
  model: "gemini-3.5-flash",
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
      model: "models/gemini-3.8-live",
      generationConfig: {
        responseModalities: ["AUDIO"],
        speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: "Kore" } } },
      },
      systemInstruction: { parts: [{ text: "You are Parley." }], role: "user" },
      inputAudioTranscription: {},
      outputAudioTranscription: {},
      // Calls past the ~10 min connection lifetime and the 15 min audio session limit survive.
      sessionResumption: {},
      contextWindowCompression: { slidingWindow: {} },
    })
    // No field mask: the whole setup comes from the token, whatever the client sends.
    expect(body.fieldMask).toBeUndefined()
  })

  test("a language code goes only to half-cascade models; native-audio models refuse it", async () => {
    expect(takesLanguageCode("gemini-3.8-live")).toBe(false)
    expect(takesLanguageCode("gemini-2.5-flash-native-audio-preview-12-2025")).toBe(false)
    expect(takesLanguageCode("gemini-live-2.5-flash-preview")).toBe(true)
    // The stand-in refuses it as the API does, so a caller that sent it anyway would see a 400.
    const result = await run((gemini) => gemini.mintLiveToken({ ...tokenSpec, languageCode: "de-DE" }))
    expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "GeminiEphemeralError", status: 400 })
    expect(Either.isLeft(result) && result.left.message).toContain("language_code")
  })

  test("a model that is not a Live model is refused when the token is minted", async () => {
    const result = await run((gemini) => gemini.mintLiveToken(tokenSpec), {
      liveModel: "gemini-2.5-flash-native-audio-preview-09-2025",
    })
    expect(Either.isLeft(result) && result.left).toMatchObject({ status: 400 })
    expect(Either.isLeft(result) && result.left.message).toContain("is not a Live API model")
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
    const reply = Either.getOrThrow(await run((gemini) => gemini.generateJson(extract)))
    expect(reply.finishReason).toBe("STOP")
    expect(JSON.parse(reply.text)).toEqual({
      plan: "pro",
      seats: 25,
      renew: true,
      renewal_date: "2025-03-01",
      region: null,
      budget: null,
      tags: ["pro", "seats"],
    })
    const [request] = local.requests
    // Pinned to v1beta, not the SDK's default v1.
    expect(request).toMatchObject({
      method: "generateContent",
      version: "v1beta",
      model: "gemini-3.5-flash",
      status: 200,
    })
  })

  test("a model the API does not serve is a 404, not retried", async () => {
    for (const model of ["gemini-2.0-flash", "gemini-2.5-flash", "gemini-made-up"]) {
      local.clear()
      const result = await run((gemini) => gemini.generateJson({ ...extract, model }))
      expect(Either.isLeft(result) && result.left).toMatchObject({ status: 404, retryable: false })
      expect(Either.isLeft(result) && result.left.message).toContain(`models/${model} is not found`)
      expect(local.requests).toHaveLength(1)
    }
  })

  test("a schema the SDK refuses fails at once: nothing is sent, nothing retried", async () => {
    for (const bad of [
      { type: "object", properties: { a: { type: "null" } } },
      { type: "object", properties: { a: { type: "string", anyOf: [{ type: "string" }] } } },
    ]) {
      const result = await run((gemini) => gemini.generateJson({ ...extract, responseSchema: bad }), {
        extractionBudgetMs: 30_000,
      })
      expect(Either.isLeft(result) && result.left).toMatchObject({ retryable: false })
      expect(Either.isLeft(result) && result.left.message).toContain("refused by the SDK before sending")
    }
    expect(local.requests).toHaveLength(0)
  })

  test("a schema the API refuses is a 400 naming the field, as the API words it", async () => {
    const refused = async (schema: Record<string, unknown>) => {
      local.clear()
      const result = await run((gemini) => gemini.generateJson({ ...extract, responseSchema: schema }))
      expect(local.requests).toHaveLength(1)
      expect(Either.isLeft(result) && result.left).toMatchObject({ status: 400, retryable: false })
      return Either.isLeft(result) ? result.left.message : ""
    }
    expect(await refused({ type: "object", properties: {} })).toContain(
      "response_schema.properties: should be non-empty for OBJECT type",
    )
    expect(await refused({ type: "object", properties: { a: { type: "integer", enum: ["1"] } } })).toContain(
      "].enum: only allowed for STRING type",
    )
    expect(await refused({ type: "object", properties: { a: { type: "string", enum: [1] } } })).toContain(
      "].enum[0]: Invalid value (TYPE_STRING), 1",
    )
    expect(
      await refused({ type: "object", properties: { a: { type: "string", properties: { b: {} } } } }),
    ).toContain("].properties: only allowed for OBJECT type")
    expect(
      await refused({ type: "object", properties: { a: { type: "string" } }, required: ["a", "b"] }),
    ).toContain("response_schema.required[1]: property is not defined")
    expect(await refused({ type: "object", properties: { a: { type: "array" } } })).toContain(
      "].items: missing field",
    )
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
      status: 503,
    })
    // giving up says why: the upstream's last error, not only that the budget ran out
    expect(Either.isLeft(result) && result.left.message).toContain("retry budget; last error:")
    expect(Either.isLeft(result) && result.left.message).toContain("Injected fault")
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

  test("blocked and truncated replies are handed back with their reason, not retried", async () => {
    local.inject({ method: "generateContent", blockReason: "PROHIBITED_CONTENT", times: 1 })
    expect(Either.getOrThrow(await run((gemini) => gemini.generateJson(extract)))).toEqual({
      text: "",
      finishReason: undefined,
      blockReason: "PROHIBITED_CONTENT",
    })
    local.inject({ method: "generateContent", finishReason: "SAFETY", times: 1 })
    expect(Either.getOrThrow(await run((gemini) => gemini.generateJson(extract)))).toMatchObject({
      text: "",
      finishReason: "SAFETY",
    })
    local.inject({ method: "generateContent", finishReason: "MAX_TOKENS", times: 1 })
    const cut = Either.getOrThrow(await run((gemini) => gemini.generateJson(extract)))
    expect(cut.finishReason).toBe("MAX_TOKENS")
    expect(() => JSON.parse(cut.text)).toThrow()
    expect(local.requests).toHaveLength(3)
  })

  test("malformed model output is handed back as-is", async () => {
    local.inject({ method: "generateContent", text: "Sure! Here you go: {plan: pro", times: 1 })
    const result = await run((gemini) => gemini.generateJson(extract))
    expect(Either.getOrThrow(result).text).toBe("Sure! Here you go: {plan: pro")
  })
})

describe("the local Gemini refuses what the real API refuses", () => {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${local.url}${path}`, {
      method: "POST",
      headers: { "x-goog-api-key": local.apiKey, "content-type": "application/json" },
      body: JSON.stringify(body),
    })
    return {
      status: res.status,
      message: ((await res.json()) as { error?: { message: string } }).error?.message,
    }
  }
  const setup = (overrides: Record<string, unknown> = {}, generation: Record<string, unknown> = {}) => ({
    uses: 1,
    expireTime: new Date(Date.now() + 600_000).toISOString(),
    bidiGenerateContentSetup: {
      model: "models/gemini-3.8-live",
      generationConfig: { responseModalities: ["AUDIO"], ...generation },
      ...overrides,
    },
  })
  const generate = { contents: [{ role: "user", parts: [{ text: "user: hi" }] }] }

  test("each method on its API versions only", async () => {
    expect((await post("/v1alpha/auth_tokens", setup())).status).toBe(200)
    expect((await post("/v1beta/auth_tokens", setup())).status).toBe(404)
    expect((await post("/v1/models/gemini-3.8-flash:generateContent", generate)).status).toBe(200)
    expect((await post("/v1beta/models/gemini-3.8-flash:generateContent", generate)).status).toBe(200)
    expect((await post("/v1alpha/models/gemini-3.8-flash:generateContent", generate)).status).toBe(404)
    // A Live model does not serve generateContent.
    expect((await post("/v1beta/models/gemini-3.8-live:generateContent", generate)).status).toBe(404)
  })

  test("token constraints", async () => {
    const refused = async (body: unknown, text: string) => {
      const reply = await post("/v1alpha/auth_tokens", body)
      expect(reply.status).toBe(400)
      expect(reply.message).toContain(text)
    }
    await refused({ ...setup(), uses: -1 }, "uses")
    await refused({ ...setup(), expireTime: new Date(Date.now() + 21 * 3_600_000).toISOString() }, "20 hours")
    await refused({ ...setup(), newSessionExpireTime: new Date(Date.now() - 1000).toISOString() }, "future")
    await refused(setup({}, { responseModalities: ["AUDIO", "TEXT"] }), "only one response modality")
    await refused(setup({}, { thinkingConfig: { thinkingLevel: "LOW" } }), "thinking_level")
    await refused(setup({}, { enableAffectiveDialog: true }), "enable_affective_dialog")
    await refused(setup({ proactivity: { proactiveAudio: false } }), "proactive_audio")
    await refused(
      setup({ contextWindowCompression: { triggerTokens: "1000", slidingWindow: { targetTokens: "2000" } } }),
      "target_tokens",
    )
    await refused(setup({ model: "models/gemini-live-2.5-flash-preview" }), "is not a Live API model")
  })
})
