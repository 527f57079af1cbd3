import Ajv, { type ValidateFunction } from "ajv"

/** The JSON Schema keywords Gemini's constrained decoding supports. */
const GEMINI_KEYWORDS = new Set([
  "type",
  "format",
  "description",
  "nullable",
  "enum",
  "properties",
  "required",
  "propertyOrdering",
  "items",
  "minItems",
  "maxItems",
  "minimum",
  "maximum",
  "anyOf",
  "title",
])

const ajv = new Ajv({ allErrors: true, strict: false, logger: false })
ajv.addKeyword({ keyword: "propertyOrdering", schemaType: "array" })
// Gemini's string formats; its numeric ones (int32, double, …) are hints that are not checked.
ajv.addFormat("date", /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/)
ajv.addFormat("date-time", (s: string) => /^\d{4}-\d{2}-\d{2}T/.test(s) && !Number.isNaN(Date.parse(s)))
for (const format of ["int32", "int64", "float", "double", "enum"]) ajv.addFormat(format, true)

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** Deeper schemas are not useful for extraction, and compiling them costs time quadratic in depth. */
const MAX_DEPTH = 32

const TYPES = new Set(["string", "number", "integer", "boolean", "array", "object"])

/**
 * `format` values per type, as `@google/genai`'s `Schema.format` documents them (src/types.ts); the
 * API's numeric formats are hints, its string ones constrain the output.
 */
const FORMATS: Readonly<Record<string, ReadonlySet<string>>> = {
  string: new Set(["enum", "date", "date-time"]),
  number: new Set(["float", "double"]),
  integer: new Set(["int32", "int64"]),
}

/**
 * Keywords the Gemini API accepts only on some types, and answers 400 for on any other
 * ("properties: only allowed for OBJECT type", "enum: only allowed for STRING type"); the per-type
 * table is https://ai.google.dev/gemini-api/docs/structured-output ("Only a subset of fields is
 * valid for each Type").
 */
const ONLY_FOR: Readonly<Record<string, ReadonlyArray<string>>> = {
  properties: ["object"],
  required: ["object"],
  propertyOrdering: ["object"],
  items: ["array"],
  minItems: ["array"],
  maxItems: ["array"],
  minimum: ["number", "integer"],
  maximum: ["number", "integer"],
  enum: ["string"],
}

const names = (types: ReadonlyArray<string>) => types.map((t) => `"${t}"`).join(" or ")

/** The node's type (one name), or why its `type` is unusable. */
const typeOf = (node: Record<string, unknown>, here: string): { type?: string; problem?: string } => {
  const raw = node.type
  // `@google/genai` refuses these before sending (processJsonSchema in its src/_transformers.ts).
  if (raw !== undefined && node.anyOf !== undefined)
    return { problem: `${here}: type and anyOf cannot both be set` }
  if (raw === "null") return { problem: `${here}.type: "null" cannot be the only type; use nullable: true` }
  // ["string", "null"] is how JSON Schema spells a nullable type; the SDK turns it into nullable.
  const listed = Array.isArray(raw) ? raw.filter((t) => t !== "null") : [raw]
  if (Array.isArray(raw) && (listed.length !== 1 || raw.length > 2))
    return { problem: `${here}.type: a list of types must be one type and "null"` }
  const [type] = listed
  if (type === undefined) return node.anyOf !== undefined ? {} : { problem: `${here}: type is required` }
  if (typeof type !== "string" || !TYPES.has(type))
    return { problem: `${here}.type: must be one of ${names([...TYPES])}` }
  return { type }
}

/** The first rule of the Gemini API's schema subset that `node` breaks, as `path: message`. */
const nodeProblem = (node: Record<string, unknown>, path: string): string | undefined => {
  const here = path || "schema"
  const at = (key: string) => (path ? `${path}.${key}` : key)
  for (const key of Object.keys(node))
    if (!GEMINI_KEYWORDS.has(key)) return `${at(key)}: keyword is not supported by Gemini structured output`
  const { type, problem } = typeOf(node, here)
  if (problem) return problem
  if (node.nullable !== undefined && typeof node.nullable !== "boolean")
    return `${at("nullable")}: must be true or false`
  for (const [key, types] of Object.entries(ONLY_FOR))
    if (node[key] !== undefined && (type === undefined || !types.includes(type)))
      return `${at(key)}: only allowed when type is ${names(types)}`
  if (
    node.format !== undefined &&
    !(typeof node.format === "string" && FORMATS[type ?? ""]?.has(node.format))
  )
    return FORMATS[type ?? ""]
      ? `${at("format")}: must be ${names([...(FORMATS[type ?? ""] ?? [])])} for type "${type}"`
      : `${at("format")}: not supported for type "${type}"`
  if (node.enum !== undefined) {
    // The API's Schema.enum is a list of strings (numbers are refused with 400).
    if (!Array.isArray(node.enum) || node.enum.length === 0 || !node.enum.every((v) => typeof v === "string"))
      return `${at("enum")}: must be a non-empty list of strings`
  }
  if (node.anyOf !== undefined && (!Array.isArray(node.anyOf) || node.anyOf.length === 0))
    return `${at("anyOf")}: must be a non-empty list of schemas`
  if (type === "array" && node.items === undefined) return `${at("items")}: is required when type is "array"`
  if (type === "object") {
    // The API answers 400 "properties: should be non-empty for OBJECT type".
    if (!isObject(node.properties) || Object.keys(node.properties).length === 0)
      return `${at("properties")}: must name at least one property when type is "object"`
    const defined = node.properties
    for (const key of ["required", "propertyOrdering"]) {
      const list = node[key]
      if (list === undefined) continue
      if (!Array.isArray(list) || !list.every((v) => typeof v === "string"))
        return `${at(key)}: must be a list of property names`
      // The API answers 400 "required[i]: property is not defined".
      const unknown = list.find((name) => !Object.hasOwn(defined, name))
      if (unknown !== undefined) return `${at(key)}: "${unknown}" is not one of the properties`
    }
  }
  return undefined
}

/** First break of the Gemini subset anywhere in the schema (or nesting too deep), or undefined. */
const unsupported = (node: unknown, path: string, depth = 1): string | undefined => {
  if (!isObject(node)) return `${path || "schema"}: must be a JSON Schema object`
  if (depth > MAX_DEPTH) return `${path}: schemas nested deeper than ${MAX_DEPTH} levels are not supported`
  const found = nodeProblem(node, path)
  if (found) return found
  const at = (key: string) => (path ? `${path}.${key}` : key)
  if (isObject(node.properties))
    for (const [name, child] of Object.entries(node.properties)) {
      const problem = unsupported(child, `${at("properties")}.${name}`, depth + 1)
      if (problem) return problem
    }
  if (node.items !== undefined) {
    const problem = unsupported(node.items, at("items"), depth + 1)
    if (problem) return problem
  }
  if (Array.isArray(node.anyOf))
    for (const [i, child] of node.anyOf.entries()) {
      // A `{type: "null"}` branch is how JSON Schema says "or null"; the SDK turns it into nullable.
      if (isObject(child) && child.type === "null" && Object.keys(child).length === 1) continue
      const problem = unsupported(child, `${at("anyOf")}[${i}]`, depth + 1)
      if (problem) return problem
    }
  return undefined
}

/**
 * The schema as ajv should check it. Gemini's `nullable: true` means "or null" — also with `enum` and
 * `anyOf`, where ajv's own `nullable` would reject null or refuse to compile — so it is spelled out.
 */
const forAjv = (node: unknown): unknown => {
  if (!isObject(node)) return node
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === "nullable") continue
    if (key === "properties" && isObject(value))
      out[key] = Object.fromEntries(Object.entries(value).map(([name, child]) => [name, forAjv(child)]))
    else if (key === "items") out[key] = forAjv(value)
    else if (key === "anyOf" && Array.isArray(value)) out[key] = value.map(forAjv)
    else out[key] = value
  }
  if (node.nullable === true) {
    if (typeof out.type === "string") out.type = [out.type, "null"]
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null]
    if (Array.isArray(out.anyOf)) out.anyOf = [...out.anyOf, { type: "null" }]
  }
  return out
}

/** Compiles without leaving the schema in ajv's cache (it keeps every schema object it has seen). */
const compile = (schema: Record<string, unknown>): ValidateFunction => {
  const converted = forAjv(schema) as Record<string, unknown>
  try {
    return ajv.compile(converted)
  } finally {
    ajv.removeSchema(converted)
  }
}

/** Why `schema` cannot be used as a strict output schema, or undefined when it can. */
export const strictSchemaProblem = (schema: Record<string, unknown>): string | undefined => {
  if (schema.type !== "object") return 'must be a JSON Schema of an object (type: "object")'
  const found = unsupported(schema, "")
  if (found) return found
  try {
    compile(schema)
    return undefined
  } catch (error) {
    return `is not a valid JSON Schema: ${error instanceof Error ? error.message : String(error)}`
  }
}

/** Compiled validators by serialized schema; rows are read fresh each time, so identity never hits. */
const compiled = new Map<string, ValidateFunction>()
const MAX_COMPILED = 256

/** Every violation of `schema` by `value`, as readable strings (empty when it conforms). */
export const violations = (schema: Record<string, unknown>, value: unknown): ReadonlyArray<string> => {
  const key = JSON.stringify(schema)
  let validate = compiled.get(key)
  if (validate) compiled.delete(key)
  else validate = compile(schema)
  compiled.set(key, validate) // most recently used last
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value as string)
  if (validate(value)) return []
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`)
}
