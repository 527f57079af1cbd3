import { ApiError, GoogleGenAI, Modality, type Schema } from "@google/genai"
import { Clock, Context, Data, Duration, Effect, Layer, Redacted, Schedule } from "effect"

export class GeminiEphemeralError extends Data.TaggedError("GeminiEphemeralError")<{
  readonly message: string
  readonly status?: number | undefined
}> {}

export class GeminiExtractionError extends Data.TaggedError("GeminiExtractionError")<{
  readonly message: string
  readonly status?: number | undefined
  readonly retryable: boolean
}> {}

export interface LiveTokenSpec {
  readonly systemInstruction: string
  readonly voiceName: string
  readonly languageCode?: string | undefined
  readonly ttlSeconds: number
}

export interface LiveToken {
  /** The constrained (ephemeral-token) Live WebSocket endpoint with `?access_token=<token>`, usable as-is. */
  readonly url: string
  /** `auth_tokens/...` */
  readonly token: string
}

export interface JsonRequest {
  readonly model: string
  readonly systemInstruction?: string | undefined
  readonly prompt: string
  /** OpenAPI-style Gemini schema subset. */
  readonly responseSchema: Record<string, unknown>
}

export interface GeminiService {
  readonly mintLiveToken: (spec: LiveTokenSpec) => Effect.Effect<LiveToken, GeminiEphemeralError>
  /** The raw response text ("" when the model returned no text); the caller parses and validates it. */
  readonly generateJson: (request: JsonRequest) => Effect.Effect<string, GeminiExtractionError>
}

export interface GeminiSettings {
  readonly apiKey: Redacted.Redacted<string>
  /** SDK default (the public Gemini API) when unset. */
  readonly baseUrl?: string | undefined
  readonly liveModel: string
  readonly timeoutMs: number
  /** Everything generateJson may spend, retries included. */
  readonly extractionBudgetMs?: number | undefined
  readonly retryBaseDelayMs?: number | undefined
}

/** What one extraction may spend on the model, retries included (SPEC §6: ≤ 30 s in all). */
export const EXTRACTION_BUDGET_MS = 30_000

const DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
const CONSTRAINED_LIVE_PATH =
  "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"

/** The SDK builds this URL in `live.connect` for `auth_tokens/` keys (plus `?access_token=`). */
export const liveConstrainedUrl = (baseUrl: string | undefined) => {
  const url = new URL(baseUrl ?? DEFAULT_BASE_URL)
  const scheme = url.protocol === "http:" ? "ws:" : "wss:"
  return `${scheme}//${url.host}${url.pathname.replace(/\/+$/, "")}${CONSTRAINED_LIVE_PATH}`
}

const statusOf = (cause: unknown) => (cause instanceof ApiError ? cause.status : undefined)

const isRetryableStatus = (status: number | undefined) =>
  status === undefined || status === 408 || status === 429 || status >= 500

const make = (settings: GeminiSettings): GeminiService => {
  const apiKey = Redacted.value(settings.apiKey)
  const httpOptions = settings.baseUrl ? { baseUrl: settings.baseUrl } : {}
  const ai = new GoogleGenAI({ apiKey, httpOptions })
  // Ephemeral auth tokens exist only under v1alpha; the SDK's default version is v1.
  const tokensAi = new GoogleGenAI({ apiKey, httpOptions: { ...httpOptions, apiVersion: "v1alpha" } })
  const liveUrl = liveConstrainedUrl(settings.baseUrl)
  const budgetMs = settings.extractionBudgetMs ?? EXTRACTION_BUDGET_MS
  const baseDelayMs = settings.retryBaseDelayMs ?? 500

  // Upstream messages can echo request details; the key must never reach a log or a client.
  const reason = (cause: unknown) => {
    const text = cause instanceof Error ? cause.message : "unknown error"
    return text.split(apiKey).join("[redacted]").slice(0, 300)
  }

  const mintLiveToken = (spec: LiveTokenSpec) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      // The token is "valid for the ttl window": a client may open its one session any time in it.
      const expireTime = new Date(now + spec.ttlSeconds * 1000).toISOString()
      const token = yield* Effect.tryPromise({
        try: (signal) =>
          tokensAi.authTokens.create({
            config: {
              abortSignal: signal,
              uses: 1,
              expireTime,
              newSessionExpireTime: expireTime,
              liveConnectConstraints: {
                model: settings.liveModel,
                config: {
                  responseModalities: [Modality.AUDIO],
                  inputAudioTranscription: {},
                  outputAudioTranscription: {},
                  speechConfig: {
                    voiceConfig: { prebuiltVoiceConfig: { voiceName: spec.voiceName } },
                    ...(spec.languageCode ? { languageCode: spec.languageCode } : {}),
                  },
                  systemInstruction: spec.systemInstruction,
                },
              },
              // lockAdditionalFields is deliberately left unset: the SDK then sends no field mask, so
              // the whole session setup comes from the token and a client's own setup is ignored.
              // ([] would lock only the fields above and let the client add tools, temperature, …)
            },
          }),
        catch: (cause) =>
          new GeminiEphemeralError({
            message: `Gemini auth token request failed: ${reason(cause)}`,
            status: statusOf(cause),
          }),
      }).pipe(
        Effect.timeoutFail({
          duration: settings.timeoutMs,
          onTimeout: () =>
            new GeminiEphemeralError({
              message: `Gemini auth token request timed out after ${settings.timeoutMs} ms`,
            }),
        }),
      )
      if (!token.name?.startsWith("auth_tokens/")) {
        return yield* new GeminiEphemeralError({ message: "Gemini auth token response had no token name" })
      }
      // Usable as-is, built as the Pi API builds it (the token form-encoded into `access_token`).
      const url = new URL(liveUrl)
      url.searchParams.set("access_token", token.name)
      return { url: url.toString(), token: token.name }
    })

  const attempt = (request: JsonRequest) =>
    Effect.tryPromise({
      try: (signal) =>
        ai.models.generateContent({
          model: request.model,
          contents: request.prompt,
          config: {
            abortSignal: signal,
            ...(request.systemInstruction ? { systemInstruction: request.systemInstruction } : {}),
            responseMimeType: "application/json",
            responseSchema: request.responseSchema as Schema,
          },
        }),
      catch: (cause) => {
        const status = statusOf(cause)
        return new GeminiExtractionError({
          message: `Gemini generateContent failed: ${reason(cause)}`,
          status,
          retryable: isRetryableStatus(status),
        })
      },
    }).pipe(
      Effect.map((response) => response.text ?? ""),
      Effect.timeoutFail({
        duration: settings.timeoutMs,
        onTimeout: () =>
          new GeminiExtractionError({
            message: `Gemini generateContent timed out after ${settings.timeoutMs} ms`,
            retryable: true,
          }),
      }),
    )

  const retryPolicy = Schedule.exponential(Duration.millis(baseDelayMs)).pipe(
    Schedule.jittered,
    Schedule.upTo(Duration.millis(budgetMs)),
  )

  const generateJson = (request: JsonRequest) =>
    attempt(request).pipe(
      Effect.retry({ schedule: retryPolicy, while: (error) => error.retryable }),
      Effect.timeoutFail({
        duration: budgetMs,
        onTimeout: () =>
          new GeminiExtractionError({
            message: `Gemini generateContent gave up after its ${budgetMs} ms retry budget`,
            retryable: true,
          }),
      }),
    )

  return { mintLiveToken, generateJson }
}

export class Gemini extends Context.Tag("Parley/Gemini")<Gemini, GeminiService>() {
  static readonly make = make
  static readonly layer = (settings: GeminiSettings) => Layer.succeed(Gemini, make(settings))
}
