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

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false })
ajv.addKeyword({ keyword: "propertyOrdering", schemaType: "array" })

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** First keyword outside the Gemini subset, as `path: message`, or undefined. */
const unsupported = (node: unknown, path: string): string | undefined => {
  if (!isObject(node)) return `${path || "schema"}: must be a JSON Schema object`
  for (const [key, value] of Object.entries(node)) {
    const here = path ? `${path}.${key}` : key
    if (!GEMINI_KEYWORDS.has(key)) return `${here}: keyword is not supported by Gemini structured output`
    if (key === "properties") {
      if (!isObject(value)) return `${here}: must be an object`
      for (const [name, child] of Object.entries(value)) {
        const found = unsupported(child, `${here}.${name}`)
        if (found) return found
      }
    } else if (key === "items") {
      const found = unsupported(value, here)
      if (found) return found
    } else if (key === "anyOf") {
      if (!Array.isArray(value)) return `${here}: must be an array`
      for (const [i, child] of value.entries()) {
        const found = unsupported(child, `${here}[${i}]`)
        if (found) return found
      }
    }
  }
  return undefined
}

/** Why `schema` cannot be used as a strict output schema, or undefined when it can. */
export const strictSchemaProblem = (schema: Record<string, unknown>): string | undefined => {
  if (schema.type !== "object") return 'must be a JSON Schema of an object (type: "object")'
  const found = unsupported(schema, "")
  if (found) return found
  try {
    ajv.compile(schema)
    return undefined
  } catch (error) {
    return `is not a valid JSON Schema: ${error instanceof Error ? error.message : String(error)}`
  }
}

const compiled = new WeakMap<object, ValidateFunction>()

/** Every violation of `schema` by `value`, as readable strings (empty when it conforms). */
export const violations = (schema: Record<string, unknown>, value: unknown): ReadonlyArray<string> => {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  if (validate(value)) return []
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`)
}
