import { HttpServerRequest } from "@effect/platform"
import { Effect, Option } from "effect"
import { InvalidRequestBody, PayloadTooLarge, UnsupportedMediaType } from "../Domain/Errors.ts"

/** Routes whose bodies are not application/json (LiveKit posts `application/webhook+json`). */
const RAW_BODY_ROUTES = new Set(["/api/v1/voice/webhooks/livekit"])

const isJson = (contentType: string) => /^application\/([\w.-]+\+)?json\b/i.test(contentType.trim())

const tooLarge = (max: number) => new PayloadTooLarge({ message: `Request body exceeds ${max} bytes.` })

/** Refuses bodies that are too large or not JSON before anything reads them. */
export const checkBody = (
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number,
  pathname: string,
): Option.Option<PayloadTooLarge | UnsupportedMediaType> => {
  const length = Number(request.headers["content-length"] ?? "0")
  if (length > maxBodyBytes) return Option.some(tooLarge(maxBodyBytes))
  const hasBody = length > 0 || request.headers["transfer-encoding"] !== undefined
  const contentType = request.headers["content-type"]
  if (hasBody && contentType !== undefined && !RAW_BODY_ROUTES.has(pathname) && !isJson(contentType))
    return Option.some(
      new UnsupportedMediaType({
        message: `Content-Type must be application/json, not ${contentType}${
          // what `curl -d` sends unless told otherwise
          /^application\/x-www-form-urlencoded\b/i.test(contentType)
            ? " (with curl -d, add -H 'Content-Type: application/json')"
            : ""
        }.`,
      }),
    )
  return Option.none()
}

/**
 * A chunked body declares no length, so it is read here, stopping at the limit, and handed on as a
 * request with a known body. Requests with a Content-Length (already checked) pass through as they are.
 */
export const boundChunkedBody = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) =>
  Effect.gen(function* () {
    const source = request.source
    if (
      request.headers["content-length"] !== undefined ||
      !(source instanceof Request) ||
      source.body === null
    )
      return request
    const reader = source.body.getReader()
    const chunks: Array<Uint8Array> = []
    let total = 0
    while (true) {
      const { done, value } = yield* Effect.promise(() => reader.read())
      if (done) break
      total += value.byteLength
      if (total > maxBodyBytes) {
        yield* Effect.promise(() => reader.cancel().catch(() => undefined))
        return yield* tooLarge(maxBodyBytes)
      }
      chunks.push(value)
    }
    const headers = new Headers(source.headers)
    headers.delete("transfer-encoding")
    headers.set("content-length", String(total))
    return HttpServerRequest.fromWeb(
      new Request(source.url, { method: source.method, headers, body: Buffer.concat(chunks) }),
    )
  })

/** The largest array (a transcript) and object the API accepts anywhere, and the deepest nesting. */
const MAX_ITEMS = 5000
const MAX_KEYS = 5000
const MAX_DEPTH = 64

/**
 * Where a parsed body is larger than anything the API accepts, checked before schema validation so
 * that a small body of many tiny items cannot make validation (and its error report) expensive.
 */
const shapeProblem = (body: unknown): { path: string; message: string } | undefined => {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value: body, path: "", depth: 0 }]
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!
    if (typeof value !== "object" || value === null) continue
    if (depth > MAX_DEPTH) return { path, message: `must not be nested deeper than ${MAX_DEPTH} levels` }
    if (Array.isArray(value)) {
      if (value.length > MAX_ITEMS) return { path, message: `must have at most ${MAX_ITEMS} items` }
      for (const [i, v] of value.entries()) stack.push({ value: v, path: `${path}[${i}]`, depth: depth + 1 })
    } else {
      const entries = Object.entries(value)
      if (entries.length > MAX_KEYS) return { path, message: `must have at most ${MAX_KEYS} keys` }
      for (const [k, v] of entries)
        stack.push({ value: v, path: path ? `${path}.${k}` : k, depth: depth + 1 })
    }
  }
  return undefined
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"])

/**
 * JSON bodies, before the endpoint decodes them: a missing body is read as `{}` (so a POST whose
 * fields are all optional needs none, and a missing required field is named), and a body larger in
 * shape than anything the API accepts is refused at once.
 */
export const prepareJsonBody = (request: HttpServerRequest.HttpServerRequest, pathname: string) =>
  Effect.gen(function* () {
    if (!BODY_METHODS.has(request.method) || RAW_BODY_ROUTES.has(pathname)) return request
    const length = request.headers["content-length"]
    if ((length === undefined || length === "0") && request.headers["transfer-encoding"] === undefined) {
      const source = request.source
      if (!(source instanceof Request)) return request
      const headers = new Headers(source.headers)
      headers.set("content-type", "application/json")
      return HttpServerRequest.fromWeb(
        new Request(source.url, { method: source.method, headers, body: "{}" }),
      )
    }
    const body = yield* request.json
    const problem = shapeProblem(body)
    if (problem !== undefined)
      return yield* new InvalidRequestBody({
        message: `Invalid request body: ${problem.path ? `${problem.path}: ` : ""}${problem.message}`,
        ...(problem.path ? { param: problem.path } : {}),
        issues: [problem],
      })
    // The endpoint reads the body parsed here instead of parsing it a second time.
    return Object.create(request, {
      json: { value: Effect.succeed(body) },
    }) as HttpServerRequest.HttpServerRequest
  })
