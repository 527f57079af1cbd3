import { isUtf8 } from "node:buffer"
import { Headers as HttpHeaders, HttpServerRequest } from "@effect/platform"
import { SchemaAST as AST, Effect, Option, ParseResult, Schema } from "effect"
import { InvalidJson, PayloadTooLarge, RequestTimeout, UnsupportedMediaType } from "../Domain/Errors.ts"

/** Routes whose bodies are not application/json (LiveKit posts `application/webhook+json`). */
const RAW_BODY_ROUTES = new Set(["/api/v1/voice/webhooks/livekit"])

const isJson = (contentType: string) => /^application\/([\w.-]+\+)?json\b/i.test(contentType.trim())

const tooLarge = (max: number) => new PayloadTooLarge({ message: `Request body exceeds ${max} bytes.` })

/** Whether the request announces a body that is still to be read. */
export const hasBody = (request: HttpServerRequest.HttpServerRequest) =>
  Number(request.headers["content-length"] ?? "0") > 0 || request.headers["transfer-encoding"] !== undefined

/** Refuses bodies that are too large or not JSON before anything reads them. */
export const checkBody = (
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number,
  pathname: string,
): Option.Option<PayloadTooLarge | UnsupportedMediaType> => {
  if (Number(request.headers["content-length"] ?? "0") > maxBodyBytes)
    return Option.some(tooLarge(maxBodyBytes))
  const contentType = request.headers["content-type"]
  if (hasBody(request) && contentType !== undefined && !RAW_BODY_ROUTES.has(pathname) && !isJson(contentType))
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
 * Reads the body (only once the request is authenticated), stopping at the size limit (a chunked
 * body declares no length) and at the deadline, so a client trickling its body holds nothing for
 * long; hands it on as a request with a known body.
 */
export const readBody = (
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number,
  timeoutMs: number,
  pathname: string,
) =>
  Effect.gen(function* () {
    const source = request.source
    if (!hasBody(request) || !(source instanceof Request) || source.body === null) return request
    const reader = source.body.getReader()
    const chunks: Array<Uint8Array> = []
    let total = 0
    const read = Effect.gen(function* () {
      while (true) {
        // The client closed the connection mid-body (the read fails, or the platform interrupts the
        // request): nobody is left to answer, and it is not a server failure (no 500, no error log).
        const { done, value } = yield* Effect.tryPromise(() => reader.read()).pipe(
          Effect.catchAll(() => Effect.interrupt),
          Effect.onInterrupt(() =>
            source.signal.aborted
              ? Effect.logInfo("the client closed the connection before its body arrived")
              : Effect.void,
          ),
        )
        if (done) return
        total += value.byteLength
        if (total > maxBodyBytes) return yield* tooLarge(maxBodyBytes)
        chunks.push(value)
      }
    })
    yield* read.pipe(
      // outside the router the request runs uninterruptibly: let the deadline interrupt the read
      Effect.interruptible,
      Effect.timeoutFail({
        duration: timeoutMs,
        onTimeout: () =>
          new RequestTimeout({ message: `The request body did not arrive within ${timeoutMs} ms.` }),
      }),
      Effect.onError(() => Effect.promise(() => reader.cancel().catch(() => undefined))),
    )
    const body = Buffer.concat(chunks)
    // JSON is UTF-8: bytes that are not would be decoded as U+FFFD and stored changed. (A signed raw
    // body is left to its signature check.)
    if (!RAW_BODY_ROUTES.has(pathname) && !isUtf8(body))
      return yield* new InvalidJson({ message: "Request body is not valid UTF-8." })
    const headers = new Headers(source.headers)
    headers.delete("transfer-encoding")
    headers.set("content-length", String(total))
    return HttpServerRequest.fromWeb(new Request(source.url, { method: source.method, headers, body }))
  })

/** The largest array (a transcript) and object the API accepts anywhere, and the deepest nesting. */
const MAX_ITEMS = 5000
const MAX_KEYS = 5000
const MAX_DEPTH = 64

/** A path kept as links to its parent, so walking a wide body copies nothing. */
type Step = { readonly key: PropertyKey; readonly parent: Step | undefined } | undefined

const pathOf = (step: Step): Array<PropertyKey> => {
  const path: Array<PropertyKey> = []
  for (let at = step; at !== undefined; at = at.parent) path.unshift(at.key)
  return path
}

/** Where a parsed body is larger than anything the API accepts (or has a `__proto__` key), and how. */
const shapeProblem = (body: unknown): { path: Array<PropertyKey>; message: string } | undefined => {
  const stack: Array<{ value: unknown; at: Step; depth: number }> = [{ value: body, at: undefined, depth: 0 }]
  const problem = (at: Step, message: string) => ({ path: pathOf(at), message })
  while (stack.length > 0) {
    const { value, at, depth } = stack.pop()!
    if (typeof value !== "object" || value === null) continue
    if (depth > MAX_DEPTH) return problem(at, `must not be nested deeper than ${MAX_DEPTH} levels`)
    if (Array.isArray(value)) {
      if (value.length > MAX_ITEMS) return problem(at, `must have at most ${MAX_ITEMS} items`)
      for (const [i, v] of value.entries())
        stack.push({ value: v, at: { key: i, parent: at }, depth: depth + 1 })
    } else {
      const entries = Object.entries(value)
      if (entries.length > MAX_KEYS) return problem(at, `must have at most ${MAX_KEYS} keys`)
      // Decoders copy keys by assignment: this one would set the copy's prototype, not a key
      // (its value would vanish, and with it what the schema was to check).
      if (Object.hasOwn(value, "__proto__"))
        return problem({ key: "__proto__", parent: at }, "is not allowed as a key")
      for (const [k, v] of entries) stack.push({ value: v, at: { key: k, parent: at }, depth: depth + 1 })
    }
  }
  return undefined
}

/**
 * An endpoint's JSON body (as parsed, once, by the platform's payload decoder, after authentication):
 * refused with one issue if it is larger in shape than anything the API accepts, and only then
 * validated by `schema` — so that a small body of many tiny items cannot make validation (and its
 * error report) expensive. Documented (the surrogate), encoded and typed as `schema`.
 */
export const JsonBody = <A, I>(schema: Schema.Schema<A, I>): Schema.Schema<A, I> =>
  Schema.declare([schema], {
    decode: (inner) => (input, options, ast) => {
      const problem = shapeProblem(input)
      if (problem === undefined) return ParseResult.decodeUnknown(inner)(input, options)
      const issue = new ParseResult.Type(ast, input, problem.message)
      const [head, ...tail] = problem.path
      return ParseResult.fail(
        head === undefined ? issue : new ParseResult.Pointer([head, ...tail], input, issue),
      )
    },
    encode: (inner) => (input, options) => ParseResult.encodeUnknown(inner)(input, options),
  }).annotations({ [AST.SurrogateAnnotationId]: schema.ast })

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"])

/**
 * What the endpoint's payload decoder reads: a missing body as `{}` (so a POST whose fields are all
 * optional needs none, and a missing required field is named), and an `application/*+json` body as
 * `application/json`, the only JSON type the platform's decoder recognises.
 */
export const asJsonBody = (
  request: HttpServerRequest.HttpServerRequest,
  pathname: string,
): HttpServerRequest.HttpServerRequest => {
  if (!BODY_METHODS.has(request.method) || RAW_BODY_ROUTES.has(pathname)) return request
  const length = request.headers["content-length"]
  if ((length === undefined || length === "0") && request.headers["transfer-encoding"] === undefined) {
    const source = request.source
    if (!(source instanceof Request)) return request
    const headers = new Headers(source.headers)
    headers.set("content-type", "application/json")
    return HttpServerRequest.fromWeb(new Request(source.url, { method: source.method, headers, body: "{}" }))
  }
  const contentType = request.headers["content-type"]
  return contentType !== undefined && /^application\/[\w.-]+\+json\b/i.test(contentType.trim())
    ? request.modify({ headers: HttpHeaders.set(request.headers, "content-type", "application/json") })
    : request
}
