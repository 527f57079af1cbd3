import { Context, Data, Effect, Layer, Option, Redacted } from "effect"
import { AppConfig, type AppConfigShape } from "./Config.ts"
import { Gemini } from "./Gemini.ts"
import { LiveKit } from "./LiveKit.ts"
import { type LocalGemini, scopedLocalGemini } from "./Local/GeminiServer.ts"
import { type LocalLiveKit, scopedLocalLiveKit } from "./Local/LiveKitServer.ts"

export class UpstreamConfigError extends Data.TaggedError("UpstreamConfigError")<{
  readonly message: string
}> {}

/** The local upstreams this process started, if any; tests use them to inject faults and send webhooks. */
export class LocalUpstreams extends Context.Tag("Parley/LocalUpstreams")<
  LocalUpstreams,
  { readonly livekit?: LocalLiveKit | undefined; readonly gemini?: LocalGemini | undefined }
>() {}

const missingLiveKit = (config: AppConfigShape) => {
  const variables: Record<string, Option.Option<unknown>> = {
    LIVEKIT_URL: config.livekitUrl,
    LIVEKIT_API_KEY: config.livekitApiKey,
    LIVEKIT_API_SECRET: config.livekitApiSecret,
  }
  return Object.entries(variables)
    .filter(([, value]) => Option.isNone(value))
    .map(([name]) => name)
}

const checkCredentials = (config: AppConfigShape) => {
  const livekit = missingLiveKit(config)
  const gemini = Option.isNone(config.geminiApiKey) ? ["GEMINI_API_KEY"] : []
  // Half a LiveKit configuration is a mistake, not a request for the local upstream.
  if (livekit.length > 0 && livekit.length < 3) {
    return Effect.fail(
      new UpstreamConfigError({
        message: `LiveKit configuration is incomplete: ${livekit.join(", ")} not set`,
      }),
    )
  }
  const missing = [...livekit, ...gemini]
  if (config.requireRealUpstreams && missing.length > 0) {
    return Effect.fail(
      new UpstreamConfigError({
        message: `REQUIRE_REAL_UPSTREAMS is true but ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not set`,
      }),
    )
  }
  return Effect.void
}

const liveKitUpstream = (config: AppConfigShape) =>
  Effect.gen(function* () {
    if (
      Option.isSome(config.livekitUrl) &&
      Option.isSome(config.livekitApiKey) &&
      Option.isSome(config.livekitApiSecret)
    ) {
      const service = LiveKit.make({
        url: config.livekitUrl.value,
        apiKey: config.livekitApiKey.value,
        apiSecret: config.livekitApiSecret.value,
        webhookApiKey: Option.getOrUndefined(config.livekitWebhookApiKey),
        webhookApiSecret: Option.getOrUndefined(config.livekitWebhookApiSecret),
        timeoutMs: config.upstreamTimeoutMs,
      })
      return { service, local: undefined }
    }
    // Webhook credentials drive verification in every mode; the local upstream signs with them too.
    const local = yield* scopedLocalLiveKit({
      webhookApiKey: Option.getOrUndefined(config.livekitWebhookApiKey),
      webhookApiSecret: Option.map(config.livekitWebhookApiSecret, Redacted.value).pipe(
        Option.getOrUndefined,
      ),
    })
    yield* Effect.logWarning(
      `LiveKit credentials not set: using the built-in local LiveKit upstream at ${local.url} — not for production`,
    )
    const service = LiveKit.make({
      url: local.url,
      apiKey: local.apiKey,
      apiSecret: Redacted.make(local.apiSecret),
      webhookApiKey: local.webhookApiKey,
      webhookApiSecret: Redacted.make(local.webhookApiSecret),
      timeoutMs: config.upstreamTimeoutMs,
    })
    return { service, local }
  })

const geminiUpstream = (config: AppConfigShape) =>
  Effect.gen(function* () {
    const settings = { liveModel: config.geminiLiveModel, timeoutMs: config.upstreamTimeoutMs }
    if (Option.isSome(config.geminiApiKey)) {
      const service = Gemini.make({
        ...settings,
        apiKey: config.geminiApiKey.value,
        baseUrl: Option.getOrUndefined(config.geminiBaseUrl),
      })
      return { service, local: undefined }
    }
    const local = yield* scopedLocalGemini()
    yield* Effect.logWarning(
      `GEMINI_API_KEY not set: using the built-in local Gemini upstream at ${local.url} — not for production`,
    )
    const service = Gemini.make({ ...settings, apiKey: Redacted.make(local.apiKey), baseUrl: local.url })
    return { service, local }
  })

/** Real LiveKit and Gemini when configured, else local loopback upstreams that live as long as the layer. */
export const UpstreamsLive: Layer.Layer<LiveKit | Gemini | LocalUpstreams, UpstreamConfigError, AppConfig> =
  Layer.scopedContext(
    Effect.gen(function* () {
      const config = yield* AppConfig
      yield* checkCredentials(config)
      const livekit = yield* liveKitUpstream(config)
      const gemini = yield* geminiUpstream(config)
      return Context.make(LiveKit, livekit.service).pipe(
        Context.add(Gemini, gemini.service),
        Context.add(LocalUpstreams, { livekit: livekit.local, gemini: gemini.local }),
      )
    }),
  )
