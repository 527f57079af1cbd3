/** Starts the real server (Bun, port 0) against the shared test database, for HTTP-level tests. */
import { HttpServer } from "@effect/platform"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted } from "effect"
// the published entry point, as an application imports it
import { makeClient } from "parley/client"
import { ServerLive } from "../../src/App.ts"
import { ApiKeys } from "../../src/Auth/ApiKeys.ts"
import { AppConfig, type AppConfigShape } from "../../src/Config.ts"
import * as BunServer from "../../src/Http/BunServer.ts"
import { Lifecycle } from "../../src/Lifecycle.ts"
import { CompletionHub } from "../../src/Sessions/CompletionHub.ts"
import { LocalUpstreams, UpstreamsLive } from "../../src/Upstreams.ts"
import { sqlLayerFor, testDatabaseUrl } from "./db.ts"
import { captureLogs } from "./logs.ts"

export const ADMIN_TOKEN = "test-admin-token"

/** Bun's HttpServer, counting the requests whose client went away before the answer (the server
 * interrupts their handler), so a test can wait until the server has seen a disconnect. */
const observedHttpServer = (disconnects: { count: number }) =>
  Layer.effect(
    HttpServer.HttpServer,
    Effect.map(HttpServer.HttpServer, (server) =>
      HttpServer.make({
        address: server.address,
        serve: (app, middleware) => {
          const counted = Effect.onInterrupt(app, () =>
            Effect.sync(() => {
              disconnects.count += 1
            }),
          )
          return middleware === undefined ? server.serve(counted) : server.serve(counted, middleware)
        },
      }),
    ),
  ).pipe(
    Layer.provide(BunServer.layerServer({ port: 0, hostname: "127.0.0.1", idleTimeout: 150 })),
    Layer.merge(BunServer.layerContext),
  )

/** `overrides.databaseUrl` points the server at another database (the shared test one otherwise). */
export const startServer = async (overrides: Partial<AppConfigShape> = {}) => {
  // The room sweep lists LiveKit's rooms on its own schedule: tests run it when they mean to.
  const config = AppConfig.layer({
    adminToken: Option.some(Redacted.make(ADMIN_TOKEN)),
    roomSweepSeconds: 0,
    ...overrides,
  })
  // Nothing is printed: what the server logs (Warning and above) is kept for the test to read.
  const logs = captureLogs()
  const disconnects = { count: 0 }
  const layer = ServerLive.pipe(
    Layer.provideMerge(observedHttpServer(disconnects)),
    // Its own lifecycle (and hub): the servers a test file starts share nothing.
    Layer.provideMerge(Layer.merge(UpstreamsLive, Lifecycle.Live)),
    Layer.provideMerge(CompletionHub.Live),
    Layer.provideMerge(
      sqlLayerFor(
        overrides.databaseUrl && Option.isSome(overrides.databaseUrl)
          ? Redacted.value(overrides.databaseUrl.value)
          : await testDatabaseUrl(),
      ),
    ),
    Layer.provideMerge(config),
    Layer.provide(Layer.merge(logs.layer, Logger.minimumLogLevel(LogLevel.Warning))),
  )
  const runtime = ManagedRuntime.make(layer)
  const address = await runtime.runPromise(Effect.map(HttpServer.HttpServer, (s) => s.address))
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  const baseUrl = `http://127.0.0.1:${address.port}`
  const run = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof layer>>) =>
    runtime.runPromise(effect)
  /** The in-process LiveKit and Gemini upstreams, for fault injection and webhooks. */
  const local = await run(LocalUpstreams)
  const livekit = local.livekit!
  const gemini = local.gemini!

  /** A new organization with one API key: each test gets its own tenant. */
  const newTenant = () =>
    run(
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const org = yield* keys.createOrg(`org-${crypto.randomUUID().slice(0, 8)}`)
        const key = yield* keys.createKey(org.org_id, "test")
        return { orgId: org.org_id, apiKey: key.api_key, keyId: key.key_id }
      }),
    )

  /** The typed client (`parley/client`), authenticated with `apiKey` (if any). */
  const client = async (apiKey?: string) => makeClient({ baseUrl, apiKey })

  /** Raw HTTP, for what the typed client cannot send (bad JSON, wrong methods, odd headers). */
  const fetchRaw = (path: string, init: RequestInit & { apiKey?: string } = {}) => {
    const headers = new Headers(init.headers)
    if (init.apiKey !== undefined) headers.set("authorization", `Bearer ${init.apiKey}`)
    if (typeof init.body === "string" && !headers.has("content-type"))
      headers.set("content-type", "application/json")
    return fetch(`${baseUrl}${path}`, { ...init, headers })
  }

  return {
    baseUrl,
    run,
    livekit,
    gemini,
    newTenant,
    client,
    fetchRaw,
    /** What the server has logged (Warning and above), formatted as the default logger prints it. */
    logs: logs.lines,
    /** How many requests the server has seen their client abandon before the answer. */
    disconnects: () => disconnects.count,
    dispose: () => runtime.dispose(),
  }
}

export type TestServer = Awaited<ReturnType<typeof startServer>>

/** Runs the typed client's call and returns its failure (the decoded error class), or throws. */
export const failure = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> => {
  const result = await Effect.runPromise(Effect.either(effect))
  if (result._tag === "Right") throw new Error(`expected a failure, got ${JSON.stringify(result.right)}`)
  return result.left
}
