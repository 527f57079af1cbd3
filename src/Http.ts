import {
  HttpApiBuilder,
  type HttpApiError,
  HttpApp,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse,
} from "@effect/platform"
import { Cause, Effect, FiberRef, Layer, LogLevel, Option } from "effect"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { authenticateAdminWith, authenticateWith, CurrentAuthentication } from "./Auth/Middleware.ts"
import { AppConfig } from "./Config.ts"
import {
  InternalError,
  InvalidJson,
  isApiError,
  RequestHeaderFieldsTooLarge,
  ServiceUnavailable,
} from "./Domain/Errors.ts"
import { CurrentRequestId, requestIdFrom } from "./Domain/RequestId.ts"
import { asJsonBody, checkBody, hasBody, readBody } from "./Http/Body.ts"
import { pendingReply } from "./Http/BunServer.ts"
import { idempotentWith } from "./Http/Idempotency.ts"
import { invalidRequest } from "./Http/Issues.ts"
import { CurrentParking, Parked, type Parking, parkingFor } from "./Http/Parking.ts"
import { allowedMethods, failedPart, routeFailure } from "./Http/Routes.ts"
import { Idempotency } from "./Idempotency.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { Limits } from "./Limits.ts"

const closeConnection = HttpApp.appendPreResponseHandler((_request, response) =>
  Effect.succeed(HttpServerResponse.setHeader(response, "connection", "close")),
)

/** Routes under an API key (all of `/api/v1/voice` but LiveKit's signed webhook), when routed. */
const needsApiKey = (method: string, pathname: string, allowed: ReadonlyArray<string>) =>
  pathname.startsWith("/api/v1/voice/") && pathname !== WEBHOOK_PATH && allowed.includes(method)

const WEBHOOK_PATH = "/api/v1/voice/webhooks/livekit"
/** `GET` here with `wait_for_completion=true` is a long-poll, counted against its key's cap. */
const SESSION_PATH = /^\/api\/v1\/voice\/sessions\/[^/]+\/?$/

/** 404 or 405 (with `Allow`) for what the router did not match; admin routes hide when disabled. */
const notRouted = (adminEnabled: boolean) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const pathname = pathOf(request.url)
    const failure = routeFailure(request.method, pathname, adminEnabled)
    if (failure._tag === "MethodNotAllowed") {
      const allow = allowedMethods(pathname, true).join(", ")
      yield* HttpApp.appendPreResponseHandler((_request, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "allow", allow)),
      )
    }
    return yield* failure
  })

/**
 * The path of a request URL (absolute, or only path and query), without parsing a URL, decoded as the
 * router decodes it (`/%61gents` is `/agents`): every check before routing must see the route that
 * will serve the request. A path that cannot be decoded is left as sent (the router refuses it).
 */
const pathOf = (url: string) => {
  const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2)
  if (start < 0) return "/"
  const end = url.indexOf("?", start)
  const raw = url.slice(start, end < 0 ? undefined : end)
  if (!raw.includes("%")) return raw
  try {
    return decodeURI(raw)
  } catch {
    return raw
  }
}

/** The size of the request's header fields as sent (names, values and their separators). */
const headerBytes = (headers: Readonly<Record<string, string>>) => {
  let total = 0
  for (const name in headers) total += name.length + headers[name].length + 4
  return total
}

const isRequestDecodeError = (u: unknown) => HttpServerError.isServerError(u) && u._tag === "RequestError"

/**
 * Turns every failure that is not already a declared API error — decode errors, unknown routes,
 * unreadable bodies, defects — into one, so the API's error encoder answers with the one envelope.
 * Its services are taken once, when the server is built: a middleware given them per request
 * (`withContext`) would merge the whole layer context into every request's.
 */
const mapFailures = Effect.gen(function* () {
  const { maxBodyBytes, bodyTimeoutMs, adminToken, maxHeaderBytes } = yield* AppConfig
  const lifecycle = yield* Lifecycle
  const limits = yield* Limits
  const authenticate = authenticateWith(yield* ApiKeys, limits)
  const adminEnabled = Option.isSome(adminToken)
  const authenticateAdmin = authenticateAdminWith(adminToken)
  const idempotent = idempotentWith(yield* Idempotency)
  return (app: HttpApp.Default): HttpApp.Default =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (lifecycle.draining()) {
        yield* closeConnection
        return yield* new ServiceUnavailable({
          message: "The server is shutting down; retry on another instance.",
        })
      }
      if (headerBytes(request.headers) > maxHeaderBytes) {
        yield* closeConnection
        return yield* new RequestHeaderFieldsTooLarge({
          message: `Request headers exceed ${maxHeaderBytes} bytes.`,
        })
      }
      const pathname = pathOf(request.url)
      // Unknown routes are the router's 404 whatever their body; only real routes get body checks.
      const allowed = allowedMethods(pathname, adminEnabled)
      if (allowed.length === 0) return yield* app
      const admin = pathname.startsWith("/admin/") && allowed.includes(request.method)
      const keyed = needsApiKey(request.method, pathname, allowed)
      const withBody = hasBody(request)
      // Nothing to check: no body, no credentials (health checks, docs, the LiveKit webhook's GETs).
      if (!withBody && !admin && !keyed) return yield* app
      // Headers only, then the key, and only then the body: nobody unauthenticated gets it read.
      const prepared = Effect.gen(function* () {
        const refused = checkBody(request, maxBodyBytes, pathname)
        if (Option.isSome(refused)) return yield* refused.value
        if (admin) yield* authenticateAdmin
        const auth = keyed ? yield* authenticate : undefined
        const bounded = withBody ? yield* readBody(request, maxBodyBytes, bodyTimeoutMs, pathname) : request
        return { auth, bounded }
      })
      // A refused request's unread body is not worth receiving: the connection closes instead.
      const { auth, bounded } = yield* withBody ? Effect.tapError(prepared, () => closeConnection) : prepared
      const body = asJsonBody(bounded, pathname)
      // each provideService copies the whole context: only when the request did change
      const served = idempotent(
        { admin, orgId: auth?.orgId, pathname, request: body },
        body === request ? app : Effect.provideService(app, HttpServerRequest.HttpServerRequest, body),
      )
      if (auth === undefined) return yield* served
      yield* FiberRef.set(CurrentAuthentication, Option.some(auth))
      if (
        request.method !== "GET" ||
        !SESSION_PATH.test(pathname) ||
        new URL(request.url, "http://localhost").searchParams.get("wait_for_completion") !== "true"
      )
        return yield* served
      // A parked long-poll keeps its place under the cap until it is answered or its client goes.
      const parking = yield* FiberRef.get(CurrentParking)
      return yield* limits.longPoll(auth.keyHash, served, (leave) =>
        Option.isSome(parking) ? parking.value.finally(leave) : leave(),
      )
    }).pipe(
      Effect.catchAllCause((cause) => {
        if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
        const failure = Cause.failureOption(cause)
        const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
        if (isApiError(error)) return Effect.fail(error)
        // its answer is sent later, by its parking: what the fiber ends with goes nowhere
        if (error instanceof Parked) return Effect.succeed(HttpServerResponse.empty())
        if (typeof error === "object" && error !== null && "_tag" in error) {
          if (error._tag === "HttpApiDecodeError")
            return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
              Effect.fail(
                invalidRequest(
                  error as HttpApiError.HttpApiDecodeError,
                  // as sent: failedPart decodes the path's parameters itself
                  failedPart(request.method, new URL(request.url, "http://localhost").pathname),
                ),
              ),
            )
          if (error._tag === "RouteNotFound") return notRouted(adminEnabled)
          if (isRequestDecodeError(error))
            return Effect.fail(new InvalidJson({ message: "Request body is not valid JSON." }))
        }
        return Effect.zipRight(
          Effect.logError("unhandled failure", cause),
          Effect.fail(new InternalError({ message: "An internal error occurred; it has been logged." })),
        )
      }),
    ) as HttpApp.Default
})

export const ErrorMappingLive = HttpApiBuilder.middleware(mapFailures)

/**
 * Puts the request's id on every response, whoever produced it (a failure becomes a response after
 * the middlewares). Installed once for the whole server (`withRequestIdHeader`), not per request.
 */
const requestIdHeader: HttpApp.PreResponseHandler = (_request, response) =>
  Effect.map(FiberRef.get(CurrentRequestId), (id) =>
    HttpServerResponse.setHeader(response, "x-request-id", id),
  )

/** The server layer with `requestIdHeader` in every request fiber it starts. */
export const withRequestIdHeader = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.locally(layer, HttpApp.currentPreResponseHandlers, Option.some(requestIdHeader))

/** The one log line of a request, written when its answer is made. */
const requestLine = (method: string, url: string, requestId: string, started: number, status: number) =>
  Effect.logInfo("request").pipe(
    Effect.annotateLogs({
      request_id: requestId,
      method,
      path: pathOf(url),
      status,
      latency_ms: Math.round(performance.now() - started),
    }),
  )

/**
 * Request id for logs, errors and the `X-Request-Id` header; one log line per request (a parked
 * request's is written by its parking, when it is answered).
 */
const respond = (
  app: HttpApp.Default,
  request: HttpServerRequest.HttpServerRequest,
  requestId: string,
  started: number,
  parking: Option.Option<Parking>,
) => {
  // Set, not `Effect.locally`: the request has a fiber of its own, which ends with it.
  const identified = Effect.zipRight(FiberRef.set(CurrentRequestId, requestId), app)
  const served = Option.isNone(parking)
    ? identified
    : Effect.zipRight(FiberRef.set(CurrentParking, parking), identified)
  return Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (level) => {
    // the log line's fields cost more than the rest of a cached read: built only if it is written
    if (LogLevel.lessThan(LogLevel.Info, level)) return served
    const line = (status: number) => requestLine(request.method, request.url, requestId, started, status)
    return Effect.tap(served, (response) =>
      Option.isSome(parking) && parking.value.parked() ? Effect.void : line(response.status),
    )
  })
}

/**
 * The answer to a request still running when shutdown's drain time is up: 503 in the envelope, sent
 * through the request's pending reply (BunServer.ts), so that the
 * interruption that follows has nothing left to send (it would send an empty 503).
 */
const cutOffResponse = (requestId: string) => {
  const { status, type, code } = ServiceUnavailable.meta
  const message = "The server shut down before this request finished; retry on another instance."
  return Response.json(
    { error: { type, code, message, request_id: requestId } },
    { status, headers: { "x-request-id": requestId, connection: "close" } },
  )
}
const cutOff = (request: HttpServerRequest.HttpServerRequest, requestId: string) => () => {
  pendingReply(request)?.send(cutOffResponse(requestId))
}

/** Outermost middleware: the request is in flight (shutdown waits for it) until its response is sent. */
export const requestLifecycle = (app: HttpApp.Default): HttpApp.Default<never, Lifecycle> =>
  Effect.flatMap(Lifecycle, (lifecycle) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const requestId = requestIdFrom(request.headers["x-request-id"])
      const started = performance.now()
      // Only a long-poll may park (its URL says so; the route checks the rest).
      const parking =
        request.method === "GET" && request.url.includes("wait_for_completion")
          ? parkingFor(request, requestId, started, lifecycle, cutOffResponse, requestLine)
          : Option.none()
      return lifecycle.inFlight(
        respond(app, request, requestId, started, parking),
        cutOff(request, requestId),
      )
    }),
  )
