import { HttpServer } from "@effect/platform"
import { BunHttpServer, BunRuntime } from "@effect/platform-bun"
import { ConfigError, Effect, Layer, Logger, Option, Schedule } from "effect"
import { ServerLive } from "./App.ts"
import { banner, bootstrapLocalKey } from "./Bootstrap.ts"
import { AppConfig } from "./Config.ts"
import { beginDraining, inFlightRequests } from "./Http.ts"
import { CompletionHub } from "./Sessions/CompletionHub.ts"
import { SqlLive } from "./Sql.ts"
import { UpstreamsLive } from "./Upstreams.ts"

/** Long-polls last up to 120 s; Bun's default 10 s idle timeout would cut them off. */
const IDLE_TIMEOUT_SECONDS = 150

const HttpServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    BunHttpServer.layer({
      port: config.port,
      hostname: config.host,
      idleTimeout: IDLE_TIMEOUT_SECONDS,
      // Http.ts enforces MAX_BODY_BYTES with the error envelope (declared lengths up front, chunked
      // bodies while reading); Bun's own limit would answer with a bare 413, so it is out of the way.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    }),
  ),
)

const LoggerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => {
    const format = Option.getOrElse(config.logFormat, () => (process.stdout.isTTY ? "pretty" : "json"))
    return Layer.merge(
      format === "json" ? Logger.json : Logger.pretty,
      Logger.minimumLogLevel(config.logLevel),
    )
  }),
)

const Announce = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const server = yield* HttpServer.HttpServer
    const localKey = yield* bootstrapLocalKey
    const port = server.address._tag === "TcpAddress" ? server.address.port : config.port
    const host = config.host === "0.0.0.0" ? "localhost" : config.host
    yield* Effect.sync(() => console.log(banner(`http://${host}:${port}`, localKey)))
  }),
)

/**
 * Built after the server, so released before it: on SIGTERM new requests (and /readyz) get 503,
 * long-polls are answered with their current state, and in-flight requests get up to 8 s to finish
 * before the server and the pool close.
 */
const Drain = Layer.scopedDiscard(
  Effect.gen(function* () {
    const hub = yield* CompletionHub
    yield* Effect.addFinalizer(() =>
      Effect.sync(beginDraining).pipe(
        Effect.zipRight(hub.close),
        Effect.zipRight(
          Effect.sync(inFlightRequests).pipe(
            Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("20 millis") }),
            Effect.interruptible, // finalizers are uninterruptible: let the timeout fire
            Effect.timeout("8 seconds"),
            Effect.ignore,
          ),
        ),
      ),
    )
  }),
)

const MainLive = Layer.merge(Announce, Drain).pipe(
  Layer.provideMerge(ServerLive),
  Layer.provideMerge(HttpServerLive),
  Layer.provide(UpstreamsLive),
  Layer.provideMerge(CompletionHub.Live),
  Layer.provideMerge(SqlLive),
  Layer.provide(LoggerLive),
  Layer.provideMerge(AppConfig.Live),
)

/** Startup failures end the process with one readable line, never a stack trace. */
const startupFailure = (error: unknown) =>
  Effect.sync(() => {
    console.error(
      ConfigError.isConfigError(error)
        ? `Invalid configuration: ${String(error).replace(/^\(|\)$/g, "")}`
        : `Startup failed: ${error instanceof Error || (typeof error === "object" && error !== null && "message" in error) ? String((error as { message: unknown }).message) : String(error)}`,
    )
    process.exit(1)
  })

Layer.launch(MainLive).pipe(
  Effect.catchAll(startupFailure),
  BunRuntime.runMain({ disablePrettyLogger: true }),
)
