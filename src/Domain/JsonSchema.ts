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

/** First keyword outside the Gemini subset (or nesting too deep), as `path: message`, or undefined. */
const unsupported = (node: unknown, path: string, depth = 1): string | undefined => {
  if (!isObject(node)) return `${path || "schema"}: must be a JSON Schema object`
  if (depth > MAX_DEPTH) return `${path}: schemas nested deeper than ${MAX_DEPTH} levels are not supported`
  for (const [key, value] of Object.entries(node)) {
    const here = path ? `${path}.${key}` : key
    if (!GEMINI_KEYWORDS.has(key)) return `${here}: keyword is not supported by Gemini structured output`
    if (key === "nullable" && typeof value !== "boolean") return `${here}: must be true or false`
    if (key === "properties") {
      if (!isObject(value)) return `${here}: must be an object`
      for (const [name, child] of Object.entries(value)) {
        const found = unsupported(child, `${here}.${name}`, depth + 1)
        if (found) return found
      }
    } else if (key === "items") {
      const found = unsupported(value, here, depth + 1)
      if (found) return found
    } else if (key === "anyOf") {
      if (!Array.isArray(value)) return `${here}: must be an array`
      for (const [i, child] of value.entries()) {
        const found = unsupported(child, `${here}[${i}]`, depth + 1)
        if (found) return found
      }
    }
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
