import { Config, ConfigError, Context, Either, Layer, LogLevel, Option, Redacted } from "effect"

/** Default Gemini models; overridable with GEMINI_LIVE_MODEL / GEMINI_EXTRACTION_MODEL. */
export const DEFAULT_LIVE_MODEL = "gemini-3.8-live"
export const DEFAULT_EXTRACTION_MODEL = "gemini-3.8-flash"

const positiveInt = (name: string, fallback: number) =>
  // validated before the default applies, so the error names the variable
  Config.integer(name).pipe(
    Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback),
  )

const optionalString = (name: string) =>
  Config.string(name).pipe(Config.option, Config.map(Option.filter((s) => s.trim() !== "")))

/** An optional absolute URL with one of `protocols`. */
const optionalUrl = (name: string, protocols: ReadonlyArray<string>) =>
  Config.string(name).pipe(
    Config.validate({
      message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`,
      validation: (raw) =>
        raw.trim() === "" || (URL.canParse(raw) && protocols.includes(new URL(raw).protocol)),
    }),
    Config.option,
    Config.map(Option.filter((s) => s.trim() !== "")),
  )

const optionalSecret = (name: string) =>
  Config.redacted(name).pipe(Config.option, Config.map(Option.filter((s) => Redacted.value(s).trim() !== "")))

const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None,
  off: LogLevel.None,
}

const logLevel = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const level = LOG_LEVELS[raw.trim().toLowerCase()]
      return level
        ? Either.right(level)
        : Either.left(ConfigError.InvalidData([], `must be one of ${Object.keys(LOG_LEVELS).join(", ")}`))
    }),
  )

const config = Config.all({
  port: Config.port("PORT").pipe(Config.withDefault(8787)),
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  databaseUrl: optionalSecret("DATABASE_URL"),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault(".data")),
  adminToken: optionalSecret("ADMIN_TOKEN"),
  livekitUrl: optionalUrl("LIVEKIT_URL", ["wss:", "ws:", "https:", "http:"]),
  livekitApiKey: optionalString("LIVEKIT_API_KEY"),
  livekitApiSecret: optionalSecret("LIVEKIT_API_SECRET"),
  livekitWebhookApiKey: optionalString("LIVEKIT_WEBHOOK_API_KEY"),
  livekitWebhookApiSecret: optionalSecret("LIVEKIT_WEBHOOK_API_SECRET"),
  geminiApiKey: optionalSecret("GEMINI_API_KEY"),
  geminiBaseUrl: optionalUrl("GEMINI_BASE_URL", ["https:", "http:"]),
  geminiLiveModel: Config.string("GEMINI_LIVE_MODEL").pipe(Config.withDefault(DEFAULT_LIVE_MODEL)),
  geminiExtractionModel: Config.string("GEMINI_EXTRACTION_MODEL").pipe(
    Config.withDefault(DEFAULT_EXTRACTION_MODEL),
  ),
  upstreamTimeoutMs: positiveInt("UPSTREAM_TIMEOUT_MS", 10_000),
  requireRealUpstreams: Config.boolean("REQUIRE_REAL_UPSTREAMS").pipe(Config.withDefault(false)),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 16_777_216),
  maxHeaderBytes: positiveInt("MAX_HEADER_BYTES", 16_384),
  bodyTimeoutMs: positiveInt("BODY_TIMEOUT_MS", 30_000),
  maxLongPollsPerKey: positiveInt("MAX_LONG_POLLS_PER_KEY", 1000),
  cacheTtlMs: positiveInt("CACHE_TTL_MS", 1000),
  requestRatePerKey: positiveInt("REQUEST_RATE_PER_KEY", 1000),
  requestBurstPerKey: positiveInt("REQUEST_BURST_PER_KEY", 2000),
  failedAuthPerAddress: positiveInt("FAILED_AUTH_PER_ADDRESS", 100),
  sessionCompletionGraceSeconds: Config.integer("SESSION_COMPLETION_GRACE_SECONDS").pipe(
    Config.validate({ message: "must be a non-negative integer", validation: (n) => n >= 0 }),
    Config.withDefault(3600),
  ),
  roomSweepSeconds: Config.integer("ROOM_SWEEP_SECONDS").pipe(
    Config.validate({ message: "must be a non-negative integer", validation: (n) => n >= 0 }),
    Config.withDefault(60),
  ),
  callCapGraceSeconds: Config.integer("CALL_CAP_GRACE_SECONDS").pipe(
    Config.validate({ message: "must be a non-negative integer", validation: (n) => n >= 0 }),
    Config.withDefault(30),
  ),
  webhookAllowPrivate: Config.boolean("WEBHOOK_ALLOW_PRIVATE").pipe(Config.withDefault(false)),
  webhookTimeoutMs: positiveInt("WEBHOOK_TIMEOUT_MS", 10_000),
  webhookRetryBaseMs: positiveInt("WEBHOOK_RETRY_BASE_MS", 5_000),
  webhookRetryWindowSeconds: positiveInt("WEBHOOK_RETRY_WINDOW_SECONDS", 86_400),
  logLevel: logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  logFormat: Config.literal("pretty", "json")("LOG_FORMAT").pipe(Config.option),
})

export type AppConfigShape = Config.Config.Success<typeof config>

/** Typed configuration read once from the environment; invalid values fail startup. */
export class AppConfig extends Context.Tag("Parley/AppConfig")<AppConfig, AppConfigShape>() {
  static readonly Live = Layer.effect(AppConfig, config)

  /** A configuration with every default, for tests; override what a test needs. */
  static readonly defaults = (overrides: Partial<AppConfigShape> = {}): AppConfigShape => ({
    port: 0,
    host: "127.0.0.1",
    databaseUrl: Option.none(),
    dataDir: ".data",
    adminToken: Option.none(),
    livekitUrl: Option.none(),
    livekitApiKey: Option.none(),
    livekitApiSecret: Option.none(),
    livekitWebhookApiKey: Option.none(),
    livekitWebhookApiSecret: Option.none(),
    geminiApiKey: Option.none(),
    geminiBaseUrl: Option.none(),
    geminiLiveModel: DEFAULT_LIVE_MODEL,
    geminiExtractionModel: DEFAULT_EXTRACTION_MODEL,
    upstreamTimeoutMs: 10_000,
    requireRealUpstreams: false,
    maxBodyBytes: 16_777_216,
    maxHeaderBytes: 16_384,
    bodyTimeoutMs: 30_000,
    maxLongPollsPerKey: 1000,
    cacheTtlMs: 1000,
    requestRatePerKey: 1000,
    requestBurstPerKey: 2000,
    failedAuthPerAddress: 100,
    sessionCompletionGraceSeconds: 3600,
    roomSweepSeconds: 60,
    callCapGraceSeconds: 30,
    webhookAllowPrivate: false,
    webhookTimeoutMs: 10_000,
    webhookRetryBaseMs: 5_000,
    webhookRetryWindowSeconds: 86_400,
    logLevel: LogLevel.Info,
    logFormat: Option.none(),
    ...overrides,
  })

  static readonly layer = (overrides: Partial<AppConfigShape> = {}) =>
    Layer.succeed(AppConfig, AppConfig.defaults(overrides))
}
