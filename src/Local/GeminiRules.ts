/**
 * What the real Gemini API refuses, for the calls Parley makes, so the local stand-in refuses it too.
 * Each rule names where it comes from. Messages follow the API's own (`* GenerateContentRequest.…`).
 */

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Models served for generateContent, from https://ai.google.dev/gemini-api/docs/deprecations (the
 * Gemini 3 table, September 2026: none with a shutdown date passed) and the `-latest` aliases of
 * https://ai.google.dev/gemini-api/docs/models. Shut-down ids (gemini-2.0-flash, gemini-2.5-pro,
 * gemini-2.5-flash, …) answer 404 as they do there.
 */
export const GENERATE_MODELS: ReadonlySet<string> = new Set([
  "gemini-3.8-flash",
  "gemini-3.7-flash",
  "gemini-3.6-flash",
  "gemini-3.5-flash",
  "gemini-3.5-flash-lite",
  "gemini-3.1-flash-lite",
  "gemini-3.1-pro-preview",
  "gemini-3-flash-preview",
  "gemini-2.5-flash-lite",
  "gemini-flash-latest",
  "gemini-flash-lite-latest",
  "gemini-pro-latest",
])

/**
 * Live API models (https://ai.google.dev/gemini-api/docs/models/gemini-3.8-live, "Stable:
 * gemini-3.8-live"; the deprecations page lists gemini-3.8-live-extended-thinking beside it). The
 * half-cascade models gemini-2.0-flash-live-001 and gemini-live-2.5-flash-preview were shut down on
 * December 9, 2025 (same page). All of these are native audio: they take no `languageCode`.
 */
export const LIVE_MODELS: ReadonlySet<string> = new Set([
  "gemini-3.8-live",
  "gemini-3.8-live-extended-thinking",
  "gemini-3.1-flash-live-preview",
  "gemini-2.5-flash-native-audio-preview-12-2025",
])

/**
 * API versions per method. Ephemeral tokens: v1alpha (`@google/genai` 3.3.0, `tokens.create`: "Support
 * in v1alpha only"). generateContent: v1 and v1beta ("All models are supported in both v1 and
 * v1beta", https://ai.google.dev/gemini-api/docs/api-versions).
 */
export const VERSIONS = { auth_tokens: ["v1alpha"], generateContent: ["v1", "v1beta"] } as const

export const modelNotFound = (model: string, version: string) =>
  `models/${model} is not found for API version ${version}, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`

const WIRE_TYPES = new Set(["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"])

/** Fields valid per type (https://ai.google.dev/gemini-api/docs/structured-output, the Type table). */
const ONLY_FOR: Readonly<Record<string, ReadonlyArray<string>>> = {
  properties: ["OBJECT"],
  required: ["OBJECT"],
  propertyOrdering: ["OBJECT"],
  items: ["ARRAY"],
  minItems: ["ARRAY"],
  maxItems: ["ARRAY"],
  minimum: ["NUMBER", "INTEGER"],
  maximum: ["NUMBER", "INTEGER"],
  enum: ["STRING"],
}

/**
 * The first thing the API refuses in a `responseSchema` as the SDK sends it (types upper-cased), as
 * the API words it: "properties: should be non-empty for OBJECT type", "enum: only allowed for STRING
 * type", "required[0]: property is not defined" (the 400s reported against the API; see the README's
 * "What the real services accept"). Enum values are strings (`Schema.enum: string[]`).
 */
export const schemaProblem = (node: unknown, path: string): string | undefined => {
  if (!isObject(node)) return `${path}: must be a schema object`
  const type = typeof node.type === "string" ? node.type : undefined
  if (type !== undefined && !WIRE_TYPES.has(type)) return `${path}.type: invalid value "${type}"`
  if (type === undefined && !Array.isArray(node.anyOf)) return `${path}.type: must be specified`
  for (const [field, types] of Object.entries(ONLY_FOR))
    if (node[field] !== undefined && (type === undefined || !types.includes(type)))
      return `${path}.${field}: only allowed for ${types.join(" or ")} type`
  if (node.enum !== undefined) {
    if (!Array.isArray(node.enum)) return `${path}.enum: must be a list`
    const bad = node.enum.findIndex((v) => typeof v !== "string")
    if (bad >= 0)
      return `${path}.enum[${bad}]: Invalid value (TYPE_STRING), ${JSON.stringify(node.enum[bad])}`
  }
  if (type === "OBJECT") {
    if (!isObject(node.properties) || Object.keys(node.properties).length === 0)
      return `${path}.properties: should be non-empty for OBJECT type`
    const properties = node.properties
    for (const field of ["required", "propertyOrdering"]) {
      const list = node[field]
      if (!Array.isArray(list)) continue
      const bad = list.findIndex((name) => typeof name !== "string" || !Object.hasOwn(properties, name))
      if (bad >= 0) return `${path}.${field}[${bad}]: property is not defined`
    }
    for (const [name, child] of Object.entries(properties)) {
      const found = schemaProblem(child, `${path}.properties[${JSON.stringify(name)}]`)
      if (found) return found
    }
  }
  if (type === "ARRAY") {
    if (node.items === undefined) return `${path}.items: missing field`
    const found = schemaProblem(node.items, `${path}.items`)
    if (found) return found
  }
  if (Array.isArray(node.anyOf))
    for (const [i, child] of node.anyOf.entries()) {
      const found = schemaProblem(child, `${path}.any_of[${i}]`)
      if (found) return found
    }
  return undefined
}

/** The longest an ephemeral token may be valid: "must be less than 20 hours in the future" (SDK types). */
const MAX_TOKEN_MS = 20 * 60 * 60 * 1000

/**
 * What `POST /v1alpha/auth_tokens` refuses, for the token Parley mints. Sources: `@google/genai`
 * 3.3.0 `CreateAuthTokenConfig` (uses, expireTime, newSessionExpireTime), the Live guide
 * (https://ai.google.dev/gemini-api/docs/live-guide: one response modality; "Native audio output
 * models … don't support explicitly setting the language code"), `SlidingWindow.targetTokens`
 * ("Should be < trigger_tokens") and the gemini-3.8-live model page (no `thinkingLevel`, no affective
 * dialog, proactive audio always on).
 */
export const tokenProblem = (body: Json, now: number): string | undefined => {
  if (body.uses !== undefined && !(Number.isInteger(body.uses) && (body.uses as number) >= 0))
    return "uses: must be a non-negative integer"
  for (const field of ["expireTime", "newSessionExpireTime"]) {
    const value = body[field]
    if (value === undefined) continue
    const at = typeof value === "string" ? Date.parse(value) : Number.NaN
    if (Number.isNaN(at)) return `${field}: invalid timestamp`
    if (at <= now) return `${field}: must be in the future`
    if (at - now >= MAX_TOKEN_MS) return `${field}: must be less than 20 hours in the future`
  }
  const setup = isObject(body.bidiGenerateContentSetup) ? body.bidiGenerateContentSetup : undefined
  if (setup === undefined) return undefined
  const model = typeof setup.model === "string" ? setup.model.replace(/^models\//, "") : ""
  if (!LIVE_MODELS.has(model))
    return `bidi_generate_content_setup.model: models/${model} is not a Live API model`
  const generation = isObject(setup.generationConfig) ? setup.generationConfig : {}
  const modalities = generation.responseModalities
  if (Array.isArray(modalities) && modalities.length !== 1)
    return "generation_config.response_modalities: only one response modality can be set"
  const speech = isObject(generation.speechConfig) ? generation.speechConfig : {}
  if (speech.languageCode !== undefined)
    return `generation_config.speech_config.language_code: not supported by native audio model ${model}`
  if (model.startsWith("gemini-3.8-live")) {
    if (isObject(generation.thinkingConfig) && generation.thinkingConfig.thinkingLevel !== undefined)
      return `generation_config.thinking_config.thinking_level: not supported by ${model}`
    if (generation.enableAffectiveDialog !== undefined)
      return `generation_config.enable_affective_dialog: not supported by ${model}`
    if (isObject(setup.proactivity) && setup.proactivity.proactiveAudio === false)
      return `proactivity.proactive_audio: cannot be disabled for ${model}`
  }
  const compression = isObject(setup.contextWindowCompression) ? setup.contextWindowCompression : {}
  const window = isObject(compression.slidingWindow) ? compression.slidingWindow : {}
  if (
    window.targetTokens !== undefined &&
    compression.triggerTokens !== undefined &&
    Number(window.targetTokens) >= Number(compression.triggerTokens)
  )
    return "context_window_compression.sliding_window.target_tokens: must be less than trigger_tokens"
  return undefined
}
