/**
 * The OpenAPI side of idempotency keys: the `Idempotency-Key` header on every POST with an API key,
 * the `Idempotent-Replayed` header on their answers, and the two 409 codes only where they can happen
 * (they are declared on the whole API, since the middleware raises them).
 */
import { IDEMPOTENCY_HEADER, MAX_KEY_LENGTH, RETENTION_SECONDS, WAIT_SECONDS } from "./Key.ts"

type Json = Record<string, unknown>
const isJson = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

const CODES = new Set(["idempotency_key_reused", "idempotency_key_in_use"])
const SCHEMAS = "#/components/schemas/"

const keyParameter = {
  name: IDEMPOTENCY_HEADER,
  in: "header",
  required: false,
  description:
    `Makes a retry safe: the first response to a key is kept for ${RETENTION_SECONDS / 3600} h per ` +
    "organization and replayed (same status and body, `Idempotent-Replayed: true`) to every request " +
    "with the same key, method, path and body; the same key with another request is 409 " +
    "`idempotency_key_reused`. A retry while the first request runs waits for it (up to " +
    `${WAIT_SECONDS} s, then 409 \`idempotency_key_in_use\` with \`Retry-After\`). 5xx answers and ` +
    "requests refused before the endpoint ran (invalid body) are not kept: the key is free again.",
  schema: { type: "string", minLength: 1, maxLength: MAX_KEY_LENGTH, pattern: "^[!-~]+$" },
  example: "5f0c8e8e-4d6c-4b8e-9a57-0e2b3c1d4f60",
}

const replayedHeader = {
  description: "`true` on a response replayed for an Idempotency-Key (absent on the first response).",
  schema: { type: "string", enum: ["true"] },
}

/** Operations with an API key (`bearer`) that take a body: the POSTs idempotency keys apply to. */
const takesKey = (method: string, op: Json) =>
  method === "post" &&
  Array.isArray(op.security) &&
  op.security.some((requirement) => isJson(requirement) && "bearer" in requirement)

/** An error response without the idempotency codes; undefined if nothing else is left. */
const withoutCodes = (response: Json): Json | undefined => {
  const content = isJson(response.content) ? response.content : {}
  const media = content["application/json"]
  if (!isJson(media) || !isJson(media.schema)) return response
  const members = Array.isArray(media.schema.anyOf) ? media.schema.anyOf : [media.schema]
  const name = (m: unknown) =>
    isJson(m) && typeof m.$ref === "string" && m.$ref.startsWith(SCHEMAS) ? m.$ref.slice(SCHEMAS.length) : ""
  const kept = members.filter((m) => !CODES.has(name(m)))
  if (kept.length === members.length) return response
  if (kept.length === 0) return undefined
  return {
    ...response,
    description: kept.map(name).join(" | "),
    content: {
      ...content,
      "application/json": { ...media, schema: kept.length === 1 ? kept[0] : { anyOf: kept } },
    },
  }
}

const documentOperation = (method: string, op: Json): Json => {
  const responses = isJson(op.responses) ? op.responses : {}
  if (!takesKey(method, op))
    return {
      ...op,
      responses: Object.fromEntries(
        Object.entries(responses).flatMap(([status, response]) => {
          const kept = isJson(response) ? withoutCodes(response) : response
          return kept === undefined ? [] : [[status, kept]]
        }),
      ),
    }
  return {
    ...op,
    parameters: [...(Array.isArray(op.parameters) ? op.parameters : []), keyParameter],
    responses: Object.fromEntries(
      Object.entries(responses).map(([status, response]) => [
        status,
        isJson(response)
          ? {
              ...response,
              headers: {
                ...(isJson(response.headers) ? response.headers : {}),
                "Idempotent-Replayed": replayedHeader,
              },
            }
          : response,
      ]),
    ),
  }
}

/** The document with idempotency keys described (run on the finished document). */
export const documentIdempotency = (spec: Json): Json => ({
  ...spec,
  paths: Object.fromEntries(
    Object.entries(isJson(spec.paths) ? spec.paths : {}).map(([path, operations]) => [
      path,
      isJson(operations)
        ? Object.fromEntries(
            Object.entries(operations).map(([method, op]) => [
              method,
              isJson(op) ? documentOperation(method, op) : op,
            ]),
          )
        : operations,
    ]),
  ),
})
