/**
 * A loopback stand-in for the Gemini REST API: ephemeral auth tokens and generateContent, on the
 * paths and in the shapes `@google/genai` uses. Extraction replies are deterministic, conform to
 * the request's response schema and are read off the user's lines in the prompt (lines such as
 * `user: ...`, or `{"role":"user","text":...}` entries). It refuses what the real API refuses for
 * these calls (GeminiRules.ts). Faults, blocked and truncated replies are injectable for tests.
 */
import { randomBytes } from "node:crypto"
import { Effect } from "effect"
import { faultQueue, type Hold } from "./Faults.ts"
import { GENERATE_MODELS, modelNotFound, schemaProblem, tokenProblem, VERSIONS } from "./GeminiRules.ts"

export type GeminiMethod = "auth_tokens" | "generateContent"

export interface GeminiFault {
  /** Every method when unset. */
  readonly method?: GeminiMethod | undefined
  /** Answer with this status (a Google error body unless `body` is given). */
  readonly status?: number | undefined
  /** Wait this long before answering. */
  readonly delayMs?: number | undefined
  /** Hold the request until this is released (then apply the rest of the fault). */
  readonly hold?: Hold | undefined
  /** Answer with this raw HTTP body (status 200 unless `status` is given). */
  readonly body?: string | undefined
  /** A well-formed generateContent reply whose candidate text is this (e.g. not JSON). */
  readonly text?: string | undefined
  /** A generateContent reply whose candidate stopped for this reason: `SAFETY` (no text), `MAX_TOKENS` (cut-off text), … */
  readonly finishReason?: string | undefined
  /** A generateContent reply with no candidate, the prompt blocked for this reason (`SAFETY`, `PROHIBITED_CONTENT`, …). */
  readonly blockReason?: string | undefined
  /** How many requests the fault applies to; unlimited when unset. */
  readonly times?: number | undefined
}

export interface LocalGeminiRequest {
  readonly method: GeminiMethod | "unknown"
  readonly path: string
  /** API version from the path, e.g. `v1alpha`. */
  readonly version: string
  readonly model?: string | undefined
  readonly body: unknown
  /** 0 until answered. */
  readonly status: number
}

export interface LocalGemini {
  /** http://127.0.0.1:<port> */
  readonly url: string
  readonly apiKey: string
  readonly requests: ReadonlyArray<LocalGeminiRequest>
  readonly inject: (fault: GeminiFault) => void
  readonly clear: () => void
  readonly stop: () => Promise<void>
}

type Json = Record<string, unknown>
type SchemaNode = Record<string, unknown>

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value)
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const GOOGLE_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
}

const googleError = (code: number, message: string) =>
  Response.json({ error: { code, message, status: GOOGLE_STATUS[code] ?? "INTERNAL" } }, { status: code })

// ---------------------------------------------------------------------------------------------
// Reading the transcript

const USER_LINE =
  /^\s*(?:[-*•]\s*)?(?:\[[^\]]*\]\s*)?(?:\d+[.)]\s*)?(?:user|caller|participant|customer)\s*:\s*(.+)$/i
const USER_JSON = [
  /"role"\s*:\s*"user"\s*,\s*"text"\s*:\s*"((?:[^"\\]|\\.)*)"/g,
  /"text"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"role"\s*:\s*"user"/g,
]

const unescapeJson = (raw: string) => {
  try {
    const value: unknown = JSON.parse(`"${raw}"`)
    return typeof value === "string" ? value : raw
  } catch {
    return raw
  }
}

/** The user's lines, or every line when the prompt marks none. */
const userLines = (prompt: string): ReadonlyArray<string> => {
  const lines = prompt.split(/\r?\n/)
  const marked = lines.flatMap((line) => {
    const match = USER_LINE.exec(line)
    return match ? [match[1].trim()] : []
  })
  const fromJson = USER_JSON.flatMap((pattern) =>
    [...prompt.matchAll(pattern)].map((m) => unescapeJson(m[1])),
  )
  const found = [...marked, ...fromJson]
  return found.length > 0 ? found : lines.map((line) => line.trim()).filter((line) => line !== "")
}

const keyWords = (key: string) =>
  key
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    // A crude stem, so `rating` finds "rate" and `seats` finds "seat".
    .map((word) => word.replace(/(ing|ion|ed|es|s)$/, ""))
    .filter((word) => word.length >= 3)

interface FillContext {
  readonly lines: ReadonlyArray<string>
  readonly words: ReadonlyArray<string>
  readonly key: string
}

/** Lines mentioning the field's name, else all lines. */
const relevant = (ctx: FillContext) => {
  const hits = ctx.lines.filter((line) => ctx.words.some((word) => line.toLowerCase().includes(word)))
  return { lines: hits.length > 0 ? hits : ctx.lines, matched: hits.length > 0 }
}

/** A nullable field is only answered by a line that mentions it; anything else would be a guess. */
const evidence = (ctx: FillContext, nullable: boolean) => {
  const { lines, matched } = relevant(ctx)
  return matched || !nullable ? lines : []
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
const mentionAt = (text: string, option: string) => {
  const match = new RegExp(`(^|[^a-z0-9])${escapeRegExp(option.toLowerCase())}($|[^a-z0-9])`).exec(
    text.toLowerCase(),
  )
  return match ? match.index : -1
}

/** Options mentioned in the text, earliest mention first (longer options win ties). */
const mentionedOptions = (options: ReadonlyArray<string>, text: string) =>
  options
    .map((option) => ({ option, at: mentionAt(text, option) }))
    .filter((entry) => entry.at >= 0 && entry.option.trim() !== "")
    .sort((a, b) => a.at - b.at || b.option.length - a.option.length)
    .map((entry) => entry.option)

const YES = new Set([
  "yes",
  "yeah",
  "yep",
  "yup",
  "sure",
  "correct",
  "true",
  "absolutely",
  "definitely",
  "certainly",
])
const NO = new Set(["no", "nope", "nah", "not", "never", "false", "don't", "dont", "doesn't", "negative"])

const firstAnswer = (text: string): boolean | null => {
  for (const word of text.toLowerCase().split(/[^a-z']+/)) {
    if (YES.has(word)) return true
    if (NO.has(word)) return false
  }
  return null
}

const ISO_DATE = /\b(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?\b/
const NUMBER = /-?\d+(?:\.\d+)?/

// ---------------------------------------------------------------------------------------------
// Filling a schema

const typeInfo = (schema: SchemaNode) => {
  const raw = schema.type
  const types = (Array.isArray(raw) ? raw : [raw]).filter((t): t is string => typeof t === "string")
  const lower = types.map((t) => t.toLowerCase())
  const type = lower.find((t) => t !== "null")
  return { type, nullable: schema.nullable === true || lower.includes("null") }
}

const clamp = (value: number, schema: SchemaNode) => {
  const min = typeof schema.minimum === "number" ? schema.minimum : Number.NEGATIVE_INFINITY
  const max = typeof schema.maximum === "number" ? schema.maximum : Number.POSITIVE_INFINITY
  return Math.min(max, Math.max(min, value))
}

const isDateField = (schema: SchemaNode) =>
  schema.format === "date" ||
  schema.format === "date-time" ||
  (typeof schema.description === "string" && /\b(iso[- ]?8601|date)\b/i.test(schema.description))

const fillString = (schema: SchemaNode, nullable: boolean, ctx: FillContext): string | null => {
  const { lines, matched } = relevant(ctx)
  if (isDateField(schema)) {
    const found = evidence(ctx, nullable)
      .map((line) => ISO_DATE.exec(line))
      .find((m) => m !== null)
    if (found) return schema.format === "date-time" ? `${found[1]}${found[2] ?? "T00:00:00Z"}` : found[1]
    return nullable ? null : "1970-01-01"
  }
  if (/summary/i.test(ctx.key)) return ctx.lines.join(" | ")
  if (matched) return lines[0]
  return nullable ? null : (ctx.lines[0] ?? "")
}

const fillArray = (schema: SchemaNode, ctx: FillContext): ReadonlyArray<unknown> => {
  const items = isObject(schema.items) ? schema.items : {}
  const min = typeof schema.minItems === "number" ? schema.minItems : 0
  const max = typeof schema.maxItems === "number" ? schema.maxItems : Number.POSITIVE_INFINITY
  const options = Array.isArray(items.enum)
    ? items.enum.filter((o): o is string => typeof o === "string")
    : []
  const found: Array<unknown> =
    options.length > 0
      ? [...mentionedOptions(options, relevant(ctx).lines.join("\n"))]
      : [fill(items, ctx)].filter((value) => value !== null)
  const padding = found.length > 0 ? found[0] : fill(items, ctx)
  while (found.length < min) found.push(padding)
  return found.slice(0, Math.max(min, Math.min(max, found.length)))
}

const fill = (schema: SchemaNode, ctx: FillContext): unknown => {
  const { type, nullable } = typeInfo(schema)
  if (Array.isArray(schema.anyOf)) {
    const branches = schema.anyOf.filter(isObject)
    const values = branches.filter((branch) => typeInfo(branch).type !== undefined).map((b) => fill(b, ctx))
    const first = values.find((value) => value !== null)
    if (first !== undefined) return first
    if (nullable || branches.some((branch) => typeInfo(branch).nullable)) return null
    return values[0] ?? null
  }
  if (Array.isArray(schema.enum) && type !== "array") {
    const options = schema.enum.filter((o): o is string => typeof o === "string")
    const [mentioned] = mentionedOptions(options, relevant(ctx).lines.join("\n"))
    return mentioned ?? (nullable ? null : (options[0] ?? null))
  }
  switch (type) {
    case "object": {
      const properties = isObject(schema.properties) ? schema.properties : {}
      const order = Array.isArray(schema.propertyOrdering)
        ? schema.propertyOrdering.filter((k): k is string => typeof k === "string" && k in properties)
        : []
      const keys = [...order, ...Object.keys(properties).filter((k) => !order.includes(k))]
      return Object.fromEntries(
        keys.map((key) => {
          const property = properties[key]
          const child = { lines: ctx.lines, words: keyWords(key), key }
          return [key, isObject(property) ? fill(property, child) : null]
        }),
      )
    }
    case "array":
      return fillArray(schema, ctx)
    case "number":
    case "integer": {
      const found = evidence(ctx, nullable)
        .map((line) => NUMBER.exec(line))
        .find((m) => m !== null)
      if (!found) return nullable ? null : clamp(0, schema)
      const value = clamp(Number(found[0]), schema)
      return type === "integer" ? Math.round(value) : value
    }
    case "boolean": {
      const answer = evidence(ctx, nullable)
        .map(firstAnswer)
        .find((a) => a !== null)
      return answer ?? (nullable ? null : false)
    }
    case "string":
      return fillString(schema, nullable, ctx)
    default:
      return null
  }
}

// ---------------------------------------------------------------------------------------------
// The server

const promptText = (body: Json) =>
  (Array.isArray(body.contents) ? body.contents : [])
    .filter(isObject)
    .flatMap((content) => (Array.isArray(content.parts) ? content.parts : []))
    .filter(isObject)
    .map((part) => (typeof part.text === "string" ? part.text : ""))
    .join("\n")

const replyText = (body: Json) => {
  const config = isObject(body.generationConfig) ? body.generationConfig : {}
  const schema = isObject(config.responseSchema)
    ? config.responseSchema
    : isObject(config.responseJsonSchema)
      ? config.responseJsonSchema
      : undefined
  const lines = userLines(promptText(body))
  if (schema) return JSON.stringify(fill(schema, { lines, words: [], key: "" }))
  return config.responseMimeType === "application/json" ? "{}" : lines.join(" | ")
}

const usage = (text: string) => ({
  promptTokenCount: 1,
  candidatesTokenCount: Math.ceil(text.length / 4),
  totalTokenCount: 1 + Math.ceil(text.length / 4),
})

const candidateResponse = (model: string, text: string, finishReason = "STOP") => {
  // A filtered candidate has no parts; a truncated one has the text so far.
  const cut = finishReason === "MAX_TOKENS" ? text.slice(0, Math.ceil(text.length / 2)) : text
  const parts = finishReason === "STOP" || finishReason === "MAX_TOKENS" ? [{ text: cut }] : []
  return Response.json({
    candidates: [{ content: { parts, role: "model" }, finishReason, index: 0 }],
    usageMetadata: usage(cut),
    modelVersion: model,
    responseId: randomBytes(8).toString("base64url"),
  })
}

/** A blocked prompt: no `candidates` at all, only `promptFeedback` (API reference, PromptFeedback). */
const blockedResponse = (model: string, blockReason: string) =>
  Response.json({
    promptFeedback: { blockReason, safetyRatings: [] },
    usageMetadata: { promptTokenCount: 1, totalTokenCount: 1 },
    modelVersion: model,
    responseId: randomBytes(8).toString("base64url"),
  })

/** The real API's refusal of the request, or undefined: a version the method is not on, an unknown model, a schema or token it rejects. */
const refusal = (method: GeminiMethod, version: string, model: string | undefined, body: Json) => {
  if (!(VERSIONS[method] as ReadonlyArray<string>).includes(version))
    return googleError(404, `${method} is not available in API version ${version}`)
  if (method === "auth_tokens") {
    const problem = tokenProblem(body, Date.now())
    return problem ? googleError(400, `* CreateAuthTokenRequest.auth_token.${problem}\n`) : undefined
  }
  if (model === undefined || !GENERATE_MODELS.has(model))
    return googleError(404, modelNotFound(model ?? "", version))
  const config = isObject(body.generationConfig) ? body.generationConfig : {}
  if (config.responseSchema === undefined) return undefined
  const problem = schemaProblem(
    config.responseSchema,
    "GenerateContentRequest.generation_config.response_schema",
  )
  return problem ? googleError(400, `* ${problem}\n`) : undefined
}

const route = (path: string): { method: GeminiMethod | "unknown"; version: string; model?: string } => {
  const token = /^\/([^/]+)\/auth_tokens$/.exec(path)
  if (token) return { method: "auth_tokens", version: token[1] }
  const generate = /^\/([^/]+)\/models\/([^/:]+):generateContent$/.exec(path)
  if (generate) return { method: "generateContent", version: generate[1], model: generate[2] }
  return { method: "unknown", version: path.split("/")[1] ?? "" }
}

export const startLocalGemini = (options: { readonly apiKey?: string | undefined } = {}): LocalGemini => {
  const apiKey = options.apiKey ?? "parley-local-gemini-key"
  const requests: Array<{ -readonly [K in keyof LocalGeminiRequest]: LocalGeminiRequest[K] }> = []
  const faults = faultQueue<GeminiFault>()

  const answer = async (request: Request, url: URL, body: unknown) => {
    const { method, version, model } = route(url.pathname)
    if (request.method !== "POST" || method === "unknown") return googleError(404, "Not found")
    const fault = faults.take(method)
    if (fault?.hold) await fault.hold.enter()
    if (fault?.delayMs) await sleep(fault.delayMs)
    if (fault?.body !== undefined) {
      return new Response(fault.body, {
        status: fault.status ?? 200,
        headers: { "Content-Type": "application/json" },
      })
    }
    if (fault?.status !== undefined) return googleError(fault.status, "Injected fault")
    const key = request.headers.get("x-goog-api-key") ?? url.searchParams.get("key")
    if (!key) return googleError(401, "Method doesn't allow unregistered callers")
    if (key !== apiKey) return googleError(403, "API key not valid")
    if (!isObject(body)) return googleError(400, "Invalid JSON payload")
    const refused = refusal(method, version, model, body)
    if (refused) return refused
    if (method === "auth_tokens") {
      const { bidiGenerateContentSetup: _setup, fieldMask: _mask, ...echoed } = body
      return Response.json({ name: `auth_tokens/${randomBytes(24).toString("base64url")}`, ...echoed })
    }
    if (fault?.blockReason) return blockedResponse(model ?? "", fault.blockReason)
    return candidateResponse(model ?? "", fault?.text ?? replyText(body), fault?.finishReason)
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const url = new URL(request.url)
      const raw = await request.text()
      let body: unknown
      try {
        body = raw === "" ? undefined : JSON.parse(raw)
      } catch {
        body = raw
      }
      // Recorded on arrival, so a test sees a request its client has already given up on.
      const record = { ...route(url.pathname), path: url.pathname, body, status: 0 }
      requests.push(record)
      const response = await answer(request, url, body)
      record.status = response.status
      return response
    },
  })

  return {
    url: `http://127.0.0.1:${server.port}`,
    apiKey,
    requests,
    inject: faults.inject,
    clear: () => {
      faults.clear()
      requests.length = 0
    },
    stop: () => server.stop(true),
  }
}

/** The local Gemini server for the lifetime of the enclosing scope. */
export const scopedLocalGemini = (options: { readonly apiKey?: string | undefined } = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => startLocalGemini(options)),
    (local) => Effect.promise(() => local.stop()),
  )
