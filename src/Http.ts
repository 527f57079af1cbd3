import {
  HttpApiBuilder,
  type HttpApiError,
  HttpApp,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse,
} from "@effect/platform"
import { Cause, Effect, Option } from "effect"
import { Api } from "./Api.ts"
import { AppConfig } from "./Config.ts"
import {
  InternalError,
  InvalidJson,
  InvalidRequest,
  type Issue,
  isApiError,
  MethodNotAllowed,
  PayloadTooLarge,
  RouteNotFound,
  UnsupportedMediaType,
} from "./Domain/Errors.ts"
import { CurrentRequestId, requestIdFrom } from "./Domain/RequestId.ts"

/** Routes whose bodies are not application/json (LiveKit posts `application/webhook+json`). */
const RAW_BODY_ROUTES = new Set(["/api/v1/voice/webhooks/livekit"])

const routes = [
  ...Object.values(Api.groups).flatMap((group) =>
    Object.values(group.endpoints).map((e) => ({ method: e.method as string, path: e.path as string })),
  ),
  { method: "GET", path: "/openapi.json" },
  { method: "GET", path: "/docs" },
].map(({ method, path }) => ({ method, pattern: new RegExp(`^${path.replace(/:[^/]+/g, "[^/]+")}/?$`) }))

const routeFailure = (method: string, pathname: string) => {
  const matching = routes.filter((r) => r.pattern.test(pathname))
  if (matching.length === 0) return new RouteNotFound({ message: `No route for ${method} ${pathname}.` })
  const allowed = [...new Set(matching.map((r) => r.method))].join(", ")
  return new MethodNotAllowed({ message: `${method} is not allowed on ${pathname}; allowed: ${allowed}.` })
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    "",
  )

const NOISE = /^Expected (undefined|null), actual /
const LITERAL = /^Expected ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false), actual (.*)$/s

/**
 * Optional and nullable fields fail as unions, which list every alternative. Keep what the client
 * needs: drop the "Expected undefined/null" alternatives when a real reason exists at or below that
 * path, and fold "Expected "a" | "b" …" alternatives into one "must be one of" issue.
 */
const readable = (issues: ReadonlyArray<Issue>): Array<Issue> => {
  const out: Array<Issue> = []
  const literals = new Map<string, { options: Array<string>; actual: string; at: number }>()
  for (const issue of issues) {
    if (
      NOISE.test(issue.message) &&
      issues.some(
        (o) =>
          o !== issue &&
          !NOISE.test(o.message) &&
          (o.path === issue.path || o.path.startsWith(`${issue.path}.`) || issue.path === ""),
      )
    )
      continue
    const literal = LITERAL.exec(issue.message)
    if (literal) {
      const seen = literals.get(issue.path)
      if (seen) {
        seen.options.push(literal[1])
        out[seen.at] = {
          path: issue.path,
          message: `must be one of ${seen.options.join(", ")}; got ${seen.actual}`,
        }
        continue
      }
      literals.set(issue.path, { options: [literal[1]], actual: literal[2], at: out.length })
    }
    if (!out.some((o) => o.path === issue.path && o.message === issue.message)) out.push(issue)
  }
  return out
}

/** Schema issues as the envelope's `issues`, `param` = the first failing path. */
export const invalidRequest = (error: HttpApiError.HttpApiDecodeError): InvalidRequest => {
  const issues = readable(
    error.issues.map((i) => ({
      path: formatPath(i.path),
      message:
        i.path.length === 0 && i.message.startsWith("Expected {") ? "must be a JSON object" : i.message,
    })),
  )
  const first = issues[0]
  const where = first?.path ? `${first.path}: ` : "request body "
  return new InvalidRequest({
    message: first ? `Invalid request: ${where}${first.message}` : "Invalid request.",
    ...(first?.path ? { param: first.path } : {}),
    issues,
  })
}

const isJson = (contentType: string) => /^application\/([\w.-]+\+)?json\b/i.test(contentType.trim())

/** Refuses bodies that are too large or not JSON before anything reads them. */
const checkBody = (
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number,
  pathname: string,
): Option.Option<PayloadTooLarge | UnsupportedMediaType> => {
  const length = Number(request.headers["content-length"] ?? "0")
  if (length > maxBodyBytes)
    return Option.some(new PayloadTooLarge({ message: `Request body exceeds ${maxBodyBytes} bytes.` }))
  const hasBody = length > 0 || request.headers["transfer-encoding"] !== undefined
  const contentType = request.headers["content-type"]
  if (hasBody && contentType !== undefined && !RAW_BODY_ROUTES.has(pathname) && !isJson(contentType))
    return Option.some(
      new UnsupportedMediaType({ message: `Content-Type must be application/json, not ${contentType}.` }),
    )
  return Option.none()
}

const isRequestDecodeError = (u: unknown) => HttpServerError.isServerError(u) && u._tag === "RequestError"

/**
 * Turns every failure that is not already a declared API error — decode errors, unknown routes,
 * unreadable bodies, defects — into one, so the API's error encoder answers with the one envelope.
 */
const mapFailures = (app: HttpApp.Default): HttpApp.Default<never, AppConfig> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const { maxBodyBytes } = yield* AppConfig
    const pathname = new URL(request.url, "http://localhost").pathname
    const refused = checkBody(request, maxBodyBytes, pathname)
    if (Option.isSome(refused)) return yield* refused.value
    return yield* app
  }).pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = Cause.failureOption(cause)
      const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
      if (isApiError(error)) return Effect.fail(error)
      if (typeof error === "object" && error !== null && "_tag" in error) {
        if (error._tag === "HttpApiDecodeError")
          return Effect.fail(invalidRequest(error as HttpApiError.HttpApiDecodeError))
        if (error._tag === "RouteNotFound")
          return Effect.flatMap(HttpServerRequest.HttpServerRequest, (req) =>
            Effect.fail(routeFailure(req.method, new URL(req.url, "http://localhost").pathname)),
          )
        if (isRequestDecodeError(error))
          return Effect.fail(new InvalidJson({ message: "Request body is not valid JSON." }))
      }
      return Effect.zipRight(
        Effect.logError("unhandled failure", cause),
        Effect.fail(new InternalError({ message: "An internal error occurred; it has been logged." })),
      )
    }),
  ) as HttpApp.Default<never, AppConfig>

export const ErrorMappingLive = HttpApiBuilder.middleware(mapFailures, { withContext: true })

let inFlight = 0

/** Requests being answered right now; shutdown waits for them to finish. */
export const inFlightRequests = (): number => inFlight

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

/** Outermost middleware: counts the request as in flight until its response is sent. */
export const requestLifecycle = (app: HttpApp.Default): HttpApp.Default =>
  Effect.acquireUseRelease(
    Effect.sync(() => void (inFlight += 1)),
    () => respond(app),
    () => Effect.sync(() => void (inFlight -= 1)),
  )
