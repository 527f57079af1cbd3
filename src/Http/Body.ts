import { HttpServerRequest } from "@effect/platform"
import { Effect, Option } from "effect"
import { PayloadTooLarge, UnsupportedMediaType } from "../Domain/Errors.ts"

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
      new UnsupportedMediaType({ message: `Content-Type must be application/json, not ${contentType}.` }),
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
