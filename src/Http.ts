import {
  HttpApiBuilder,
  type HttpApiError,
  HttpApp,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse,
} from "@effect/platform"
import { Cause, Effect, Option } from "effect"
import { AppConfig } from "./Config.ts"
import { InternalError, InvalidJson, isApiError, ServiceUnavailable } from "./Domain/Errors.ts"
import { CurrentRequestId, requestIdFrom } from "./Domain/RequestId.ts"
import { asJsonBody, boundChunkedBody, checkBody } from "./Http/Body.ts"
import { invalidRequest } from "./Http/Issues.ts"
import { allowedMethods, failedPart, routeFailure } from "./Http/Routes.ts"
import { Lifecycle } from "./Lifecycle.ts"

/** 404 or 405 (with `Allow`) for what the router did not match; admin routes hide when disabled. */
const notRouted = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const { adminToken } = yield* AppConfig
  const pathname = new URL(request.url, "http://localhost").pathname
  const failure = routeFailure(request.method, pathname, Option.isSome(adminToken))
  if (failure._tag === "MethodNotAllowed") {
    const allow = allowedMethods(pathname, true).join(", ")
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "allow", allow)),
    )
  }
  return yield* failure
})

const isRequestDecodeError = (u: unknown) => HttpServerError.isServerError(u) && u._tag === "RequestError"

/**
 * Turns every failure that is not already a declared API error — decode errors, unknown routes,
 * unreadable bodies, defects — into one, so the API's error encoder answers with the one envelope.
 */
const mapFailures = (app: HttpApp.Default): HttpApp.Default<never, AppConfig | Lifecycle> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (yield* Effect.flatMap(Lifecycle, (lifecycle) => lifecycle.draining)) {
      yield* HttpApp.appendPreResponseHandler((_request, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "connection", "close")),
      )
      return yield* new ServiceUnavailable({
        message: "The server is shutting down; retry on another instance.",
      })
    }
    const { maxBodyBytes, adminToken } = yield* AppConfig
    const pathname = new URL(request.url, "http://localhost").pathname
    // Unknown routes are the router's 404 whatever their body; only real routes get body checks.
    if (allowedMethods(pathname, Option.isSome(adminToken)).length === 0) return yield* app
    const refused = checkBody(request, maxBodyBytes, pathname)
    if (Option.isSome(refused)) return yield* refused.value
    const bounded = yield* boundChunkedBody(request, maxBodyBytes)
    return yield* Effect.provideService(
      app,
      HttpServerRequest.HttpServerRequest,
      asJsonBody(bounded, pathname),
    )
  }).pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = Cause.failureOption(cause)
      const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
      if (isApiError(error)) return Effect.fail(error)
      if (typeof error === "object" && error !== null && "_tag" in error) {
        if (error._tag === "HttpApiDecodeError")
          return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
            Effect.fail(
              invalidRequest(
                error as HttpApiError.HttpApiDecodeError,
                failedPart(request.method, new URL(request.url, "http://localhost").pathname),
              ),
            ),
          )
        if (error._tag === "RouteNotFound") return notRouted
        if (isRequestDecodeError(error))
          return Effect.fail(new InvalidJson({ message: "Request body is not valid JSON." }))
      }
      return Effect.zipRight(
        Effect.logError("unhandled failure", cause),
        Effect.fail(new InternalError({ message: "An internal error occurred; it has been logged." })),
      )
    }),
  ) as HttpApp.Default<never, AppConfig | Lifecycle>

export const ErrorMappingLive = HttpApiBuilder.middleware(mapFailures, { withContext: true })

/** Request id for logs, errors and the `X-Request-Id` header; one log line per request. */
const respond = (app: HttpApp.Default): HttpApp.Default =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const requestId = requestIdFrom(request.headers["x-request-id"])
    const started = performance.now()
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "x-request-id", requestId)),
    )
    const response = yield* Effect.locally(app, CurrentRequestId, requestId)
    yield* Effect.logInfo("request").pipe(
      Effect.annotateLogs({
        request_id: requestId,
        method: request.method,
        path: new URL(request.url, "http://localhost").pathname,
        status: response.status,
        latency_ms: Math.round(performance.now() - started),
      }),
    )
    return response
  })

/** Outermost middleware: the request is in flight (shutdown waits for it) until its response is sent. */
export const requestLifecycle = (app: HttpApp.Default): HttpApp.Default<never, Lifecycle> =>
  Effect.flatMap(Lifecycle, (lifecycle) => lifecycle.inFlight(respond(app)))
