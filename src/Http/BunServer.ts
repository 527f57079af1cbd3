import { HttpApp, HttpServer, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { Effect, type Fiber, FiberSet, Layer, Option } from "effect"

/** What Bun's `fetch` handler gets besides the request. */
export interface BunServerOptions {
  readonly port: number
  readonly hostname: string
  /** Seconds a connection may stay idle (long-polls wait up to 120 s without a byte). */
  readonly idleTimeout: number
  readonly maxRequestBodySize?: number
}

/** By Bun's request: every `HttpServerRequest` made from it (`modify` keeps its `source`) finds it. */
const replies = new WeakMap<Request, PendingReply>()

/**
 * The reply Bun waits for: one object per request, which is also the request's abort listener.
 * Its fiber is known while it runs (a client abort interrupts it) and forgotten when it ends, so a
 * request that outlives its fiber (a parked long-poll, see Parking.ts) does not keep the ended fiber,
 * its fiber refs and its scheduler alive.
 */
export class PendingReply {
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** Set by a request that parked: it answers later, and a client abort is reported to it. */
  parked: { readonly clientGone: () => void } | undefined = undefined
  answered = false
  constructor(
    readonly source: Request,
    private readonly server: Bun.Server<undefined>,
    private readonly resolve: (response: Response) => void,
    /** Runs an effect on the server's runtime (its logger), as the request's fiber was. */
    readonly run: <A>(effect: Effect.Effect<A>) => void,
  ) {}

  /** The client's address, as Bun knows it (looked up only when asked for). */
  address(): string | undefined {
    return this.server.requestIP(this.source)?.address
  }

  /** Sends `response` unless an answer went out already; whether it did. */
  send(response: Response): boolean {
    if (this.answered) return false
    this.answered = true
    this.resolve(response)
    return true
  }

  /** The client went away (the `abort` event of the request's signal). */
  handleEvent() {
    this.fiber?.unsafeInterruptAsFork(HttpServerError.clientAbortFiberId)
    this.parked?.clientGone()
  }
}

/** The pending reply of a request this server received (none for requests made otherwise). */
export const pendingReply = (request: HttpServerRequest.HttpServerRequest): PendingReply | undefined =>
  request.source instanceof Request ? replies.get(request.source) : undefined

/** The client's address: the request's own, else Bun's for the request the server received. */
export const clientAddress = (request: HttpServerRequest.HttpServerRequest): Option.Option<string> =>
  Option.orElse(request.remoteAddress, () => Option.fromNullable(pendingReply(request)?.address()))

/**
 * Bun's HTTP server for Effect's `HttpServer`, as platform-bun's `BunHttpServer` makes it, except
 * that each request's pending reply is a `PendingReply` (platform-bun keeps the `resolve` on its
 * request object, and the request's ended fiber in its abort listener for as long as the request
 * lives). The client's address is Bun's, looked up only when asked for (`clientAddress`).
 */
const make = (options: BunServerOptions) =>
  Effect.gen(function* () {
    const notFound = () => new Response("not found", { status: 404 })
    const handlers: Array<(request: Request, server: Bun.Server<undefined>) => Promise<Response> | Response> =
      [notFound]
    const server = Bun.serve({ ...options, fetch: notFound })
    yield* Effect.addFinalizer(() => Effect.sync(() => void server.stop()))
    return HttpServer.make({
      address: { _tag: "TcpAddress", port: server.port ?? options.port, hostname: server.hostname ?? "" },
      serve: (httpApp, middleware) =>
        Effect.gen(function* () {
          const runFork = yield* FiberSet.makeRuntime<never>()
          const runtime = yield* Effect.runtime<never>()
          const app = HttpApp.toHandled(
            httpApp,
            (request, response) =>
              Effect.sync(() => {
                const reply = pendingReply(request)
                if (reply === undefined) return
                reply.fiber = undefined
                // a parked request answers later, on its own
                if (reply.parked !== undefined) return
                reply.send(
                  // a streamed body outlives the request's scope, as platform-bun's does
                  HttpServerResponse.toWeb(HttpApp.unsafeEjectStreamScope(response), {
                    withoutBody: request.method === "HEAD",
                    runtime,
                  }),
                )
              }),
            middleware,
          )
          const handler = (request: Request, bun: Bun.Server<undefined>) =>
            new Promise<Response>((resolve) => {
              const reply = new PendingReply(request, bun, resolve, runFork)
              replies.set(request, reply)
              const fiber = runFork(
                Effect.provideService(
                  app,
                  HttpServerRequest.HttpServerRequest,
                  HttpServerRequest.fromWeb(request),
                ),
              )
              if (!reply.answered && reply.parked === undefined) reply.fiber = fiber
              request.signal.addEventListener("abort", reply, { once: true })
            })
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              handlers.push(handler)
              server.reload({ fetch: handler })
            }),
            () =>
              Effect.sync(() => {
                handlers.pop()
                server.reload({ fetch: handlers[handlers.length - 1] ?? notFound })
              }),
          )
        }),
    })
  })

/** The server alone (tests wrap it). */
export const layerServer = (options: BunServerOptions) => Layer.scoped(HttpServer.HttpServer, make(options))

/** What handlers need besides the server: platform-bun's file system, path and ETags. */
export const layerContext = BunHttpServer.layerContext

/** The server with what handlers need besides it. */
export const layer = (options: BunServerOptions) => Layer.merge(layerServer(options), layerContext)
