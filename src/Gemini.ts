import { ApiError, GoogleGenAI, type HttpOptions, Modality, type Schema } from "@google/genai"
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
  /** Only for a model that takes one (`takesLanguageCode`). */
  readonly languageCode?: string | undefined
  readonly ttlSeconds: number
  /**
   * The session's enforced call cap plus its grace period, when it has one (Sessions/CallCap.ts): the
   * token then stops working that long after it is minted, if that is sooner than the ttl.
   */
  readonly callCapSeconds?: number | undefined
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
  /** What this call may spend, retries included (at most the service's own budget). */
  readonly budgetMs?: number | undefined
}

/** What the model answered: its text, and why it stopped or was blocked when it did not simply finish. */
export interface JsonReply {
  /** The candidate's text ("" when there is none); the caller parses and validates it. */
  readonly text: string
  /** The candidate's `finishReason` (`STOP` when it finished; `SAFETY`, `MAX_TOKENS`, … when not). */
  readonly finishReason?: string | undefined
  /** `promptFeedback.blockReason` when the prompt itself was blocked (there is no candidate then). */
  readonly blockReason?: string | undefined
}

export interface GeminiService {
  readonly mintLiveToken: (spec: LiveTokenSpec) => Effect.Effect<LiveToken, GeminiEphemeralError>
  readonly generateJson: (request: JsonRequest) => Effect.Effect<JsonReply, GeminiExtractionError>
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

/**
 * generateContent is called on v1beta, pinned rather than left to the SDK (whose default is v1):
 * preview and `-latest` models are served there, and so are `systemInstruction` with
 * `responseSchema` (README, "What the real services accept").
 */
export const EXTRACTION_API_VERSION = "v1beta"

/**
 * Only the half-cascade Live models take `speechConfig.languageCode`: "Native audio output models
 * automatically choose the appropriate language and don't support explicitly setting the language
 * code" (https://ai.google.dev/gemini-api/docs/live-guide). Every Live model served today is native
 * audio (the half-cascade ones below were shut down on December 9, 2025,
 * https://ai.google.dev/gemini-api/docs/deprecations); the language is in the system instruction.
 */
const HALF_CASCADE_LIVE_MODELS: ReadonlySet<string> = new Set([
  "gemini-live-2.5-flash-preview",
  "gemini-2.0-flash-live-001",
])
export const takesLanguageCode = (liveModel: string) => HALF_CASCADE_LIVE_MODELS.has(liveModel)

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
  const ai = new GoogleGenAI({ apiKey, httpOptions: { ...httpOptions, apiVersion: EXTRACTION_API_VERSION } })
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
      // An enforced call cap shortens the window. What bounds a Live session that is already running
      // is `expireTime` ("messages in Live API sessions will be rejected" after it, and "Gemini may
      // preemptively close the session"; @google/genai CreateAuthTokenConfig): every connection of the
      // session, resumed ones included, authenticates with this token (resuming is "not a use", but
      // the token must still be valid), so no reconnect outlives it either. `newSessionExpireTime`
      // only bounds opening a session; it is kept equal to `expireTime`, as whether a resumption counts
      // as a new session is not documented, and a resumption must not be refused while messages are
      // still accepted.
      const windowSeconds = Math.min(spec.ttlSeconds, spec.callCapSeconds ?? spec.ttlSeconds)
      const expireTime = new Date(now + windowSeconds * 1000).toISOString()
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
                  // A Live connection lasts about 10 minutes and an audio session stops at 15 without
                  // compression. Both are locked in, as the client cannot add them to a locked setup:
                  // the server sends resumption handles (the client reconnects with the latest one on
                  // GoAway) and a sliding window keeps the context under the model's limit.
                  sessionResumption: {},
                  contextWindowCompression: { slidingWindow: {} },
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

  const attempt = (request: JsonRequest) => {
    // Whether the SDK got as far as sending: an error it raised before (it refuses some schemas
    // itself) would be raised again by every retry.
    let sent = false
    const fetchTracked: NonNullable<HttpOptions["fetch"]> = (input, init) => {
      sent = true
      return fetch(input, init)
    }
    return Effect.tryPromise({
      try: (signal) =>
        ai.models.generateContent({
          model: request.model,
          contents: request.prompt,
          config: {
            abortSignal: signal,
            httpOptions: { fetch: fetchTracked },
            ...(request.systemInstruction ? { systemInstruction: request.systemInstruction } : {}),
            responseMimeType: "application/json",
            responseSchema: request.responseSchema as Schema,
          },
        }),
      catch: (cause) => {
        const status = statusOf(cause)
        return sent
          ? new GeminiExtractionError({
              message: `Gemini generateContent failed: ${reason(cause)}`,
              status,
              retryable: isRetryableStatus(status),
            })
          : new GeminiExtractionError({
              message: `Gemini generateContent was refused by the SDK before sending: ${reason(cause)}`,
              retryable: false,
            })
      },
    }).pipe(
      Effect.map(
        (response): JsonReply => ({
          text: response.candidates?.[0] ? (response.text ?? "") : "",
          finishReason: response.candidates?.[0]?.finishReason,
          blockReason: response.promptFeedback?.blockReason,
        }),
      ),
      Effect.timeoutFail({
        duration: settings.timeoutMs,
        onTimeout: () =>
          new GeminiExtractionError({
            message: `Gemini generateContent timed out after ${settings.timeoutMs} ms`,
            retryable: true,
          }),
      }),
    )
  }

  const retryPolicy = Schedule.exponential(Duration.millis(baseDelayMs)).pipe(
    Schedule.jittered,
    Schedule.upTo(Duration.millis(budgetMs)),
  )

  const generateJson = (request: JsonRequest) =>
    Effect.suspend(() => {
      const budget = Math.min(budgetMs, request.budgetMs ?? budgetMs)
      // what the upstream said last, so that giving up says why, not only that time ran out
      const last: { error?: GeminiExtractionError } = {}
      return attempt(request).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            last.error = error
          }),
        ),
        Effect.retry({ schedule: retryPolicy, while: (error) => error.retryable }),
        Effect.timeoutFail({
          duration: Math.max(0, budget),
          onTimeout: () =>
            new GeminiExtractionError({
              message: `Gemini generateContent gave up after its ${budget} ms retry budget${
                last.error ? `; last error: ${last.error.message}` : ""
              }`,
              status: last.error?.status,
              retryable: true,
            }),
        }),
      )
    })

  return { mintLiveToken, generateJson }
}

export class Gemini extends Context.Tag("Parley/Gemini")<Gemini, GeminiService>() {
  static readonly make = make
  static readonly layer = (settings: GeminiSettings) => Layer.succeed(Gemini, make(settings))
}
