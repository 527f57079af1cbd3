import { createServer } from "node:net"
import { HttpServer } from "@effect/platform"
import { BunRuntime } from "@effect/platform-bun"
import { Cause, ConfigError, Data, Effect, Layer, Logger, Option } from "effect"
import { ServerLive } from "./App.ts"
import { banner, bootstrapLocalKey } from "./Bootstrap.ts"
import { AppConfig } from "./Config.ts"
import * as BunServer from "./Http/BunServer.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { CompletionHub } from "./Sessions/CompletionHub.ts"
import { SqlLive } from "./Sql.ts"
import { UpstreamsLive } from "./Upstreams.ts"

/** Long-polls last up to 120 s; Bun's default 10 s idle timeout would cut them off. */
const IDLE_TIMEOUT_SECONDS = 150

const HttpServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    BunServer.layer({
      port: config.port,
      hostname: config.host,
      idleTimeout: IDLE_TIMEOUT_SECONDS,
      // Http.ts enforces MAX_BODY_BYTES with the error envelope (declared lengths up front, chunked
      // bodies while reading); Bun's own limit would answer with a bare 413, so it is out of the way.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    }),
  ),
)

class PortInUse extends Data.TaggedError("PortInUse")<{ readonly message: string }> {}

const portInUse = ({ port, host }: { port: number; host: string }) =>
  new PortInUse({ message: `port ${port} on ${host} is already in use (set PORT)` })

const isAddressInUse = (u: unknown) =>
  typeof u === "object" && u !== null && "code" in u && u.code === "EADDRINUSE"

/**
 * The database starts before the HTTP server (whose handlers need it), so a taken port is probed
 * first: one line at once instead of a failure after the embedded PostgreSQL has started.
 */
const PortAvailable = Layer.effectDiscard(
  Effect.flatMap(AppConfig, (config) =>
    Effect.async<void, PortInUse>((resume) => {
      if (config.port === 0) return resume(Effect.void)
      const probe = createServer()
      probe.once("error", (error) =>
        resume(isAddressInUse(error) ? Effect.fail(portInUse(config)) : Effect.void),
      )
      probe.listen(config.port, config.host, () => probe.close(() => resume(Effect.void)))
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
 * long-polls are answered with their current state, and in-flight requests and detached work get up
 * to 8 s to finish before the server and the pool close.
 */
const Drain = Layer.scopedDiscard(
  Effect.flatMap(Lifecycle, (lifecycle) => Effect.addFinalizer(() => lifecycle.drain)),
)

const MainLive = Layer.merge(Announce, Drain).pipe(
  Layer.provideMerge(ServerLive),
  Layer.provideMerge(HttpServerLive),
  Layer.provide(UpstreamsLive),
  Layer.provideMerge(Lifecycle.Live),
  Layer.provideMerge(CompletionHub.Live),
  Layer.provideMerge(SqlLive),
  Layer.provide(PortAvailable),
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

/** Bun.serve throws (a defect) when it cannot bind, e.g. when the port was taken after the probe. */
const bindFailure = (cause: Cause.Cause<unknown>) => {
  const defect = Cause.dieOption(cause)
  return Option.isSome(defect) && isAddressInUse(defect.value)
    ? Effect.flatMap(AppConfig, (config) => startupFailure(portInUse(config))).pipe(
        Effect.provide(AppConfig.Live),
      )
    : Effect.failCause(cause)
}

Layer.launch(MainLive).pipe(
  Effect.catchAll(startupFailure),
  Effect.catchAllCause(bindFailure),
  BunRuntime.runMain({ disablePrettyLogger: true }),
)
