import { Schema } from "effect"

/**
 * Field building blocks. Every type mismatch carries a short message ("must be a string"), never a
 * dump of the schema or of the value, and optional fields are exact (no "Expected undefined" noise).
 */

/** An optional field that may be absent but not `undefined` (JSON has no undefined). */
export const optional = <S extends Schema.Schema.All>(schema: S) =>
  Schema.optionalWith(schema, { exact: true })

/** A lone UTF-16 surrogate: not Unicode text, and PostgreSQL's jsonb rejects it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why PostgreSQL could not store `s` as text or jsonb (U+0000, lone surrogates), or undefined. */
export const unstorable = (s: string): string | undefined => {
  if (s.includes("\u0000")) return "must not contain NUL characters (\\u0000)"
  if (LONE_SURROGATE.test(s)) return "must be valid Unicode (no unpaired surrogates)"
  return undefined
}

export const Str = Schema.String.annotations({ message: () => "must be a string" }).pipe(
  Schema.filter((s) => unstorable(s)),
)

const MAX_JSON_DEPTH = 32

/**
 * Why an arbitrary JSON value cannot be stored faithfully: nesting deeper than 32 levels, numbers
 * JSON cannot carry (1e400 parses to Infinity and would come back as null), unstorable strings.
 */
export const jsonProblem = (value: unknown, depth = 0): string | undefined => {
  if (typeof value === "string") return unstorable(value)
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "numbers must be finite"
  if (typeof value !== "object" || value === null) return undefined
  if (depth >= MAX_JSON_DEPTH) return `must not be nested deeper than ${MAX_JSON_DEPTH} levels`
  for (const [key, child] of Object.entries(value)) {
    const problem = (Array.isArray(value) ? undefined : unstorable(key)) ?? jsonProblem(child, depth + 1)
    if (problem !== undefined) return problem
  }
  return undefined
}
export const Bool = Schema.Boolean.annotations({ message: () => "must be true or false" })
export const Num = Schema.Number.annotations({ message: () => "must be a number" })

/** One of a few string literals; one issue naming them all instead of one per literal. */
export const OneOf = <const L extends ReadonlyArray<string>>(...literals: L) =>
  Schema.Literal(...literals).annotations({
    message: (issue) => ({
      message: `must be one of ${literals.map((l) => JSON.stringify(l)).join(", ")}; got ${preview(issue.actual)}`,
      override: true,
    }),
  })

/** A short rendering of a rejected value, for messages. */
export const preview = (u: unknown): string => {
  const s = u === undefined ? "undefined" : (JSON.stringify(u) ?? String(u))
  return s.length > 40 ? `${s.slice(0, 37)}...` : s
}

/** A JSON object with a readable type-mismatch message (nested issues keep their own). */
export const object = { message: () => "must be a JSON object" } as const

/** A string trimmed before its bounds are checked (SPEC §5). */
export const Text = (min: number, max: number) =>
  Schema.compose(
    // the documented (encoded) side carries the bounds, which apply after trimming
    Str.annotations({ jsonSchema: { type: "string", minLength: min, maxLength: max } }),
    Schema.Trim,
  ).pipe(
    Schema.minLength(min, {
      message: () => (min === 1 ? "must not be empty" : `must be at least ${min} characters`),
    }),
    Schema.maxLength(max, { message: () => `must be at most ${max} characters` }),
  )

export const IntBetween = (min: number, max: number) =>
  Num.pipe(
    Schema.int({ message: () => "must be an integer" }),
    Schema.between(min, max, { message: () => `must be between ${min} and ${max}` }),
  )

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]*$/

/** Why `s` is not a valid key (1–64 characters, a letter then letters, digits, underscores). */
export const identifierProblem = (s: string): string | undefined => {
  if (s.length === 0) return "must not be empty"
  if (s.length > 64) return "must be at most 64 characters"
  if (!IDENTIFIER.test(s)) return "must start with a letter and contain only letters, digits and underscores"
  return undefined
}

export const Identifier = Str.pipe(
  Schema.filter((s) => identifierProblem(s), {
    jsonSchema: { pattern: IDENTIFIER.source, minLength: 1, maxLength: 64 },
  }),
)

export const maxKeys =
  (max: number) =>
  <A extends Readonly<Record<string, unknown>>, I, R>(self: Schema.Schema<A, I, R>) =>
    self.pipe(
      Schema.filter(
        (record) => (Object.keys(record).length <= max ? undefined : `must have at most ${max} keys`),
        { jsonSchema: { maxProperties: max } },
      ),
    )

/**
 * A string-keyed map whose keys must be identifiers: a bad key is reported at its own path (a
 * record's key schema would report it as an "unexpected" property with a schema dump).
 */
export const IdentifierKeyed = <V extends Schema.Schema.Any>(value: V) =>
  Schema.Record({ key: Schema.String, value })
    .annotations(object)
    .pipe(
      Schema.filter(
        (record) =>
          Object.keys(record).flatMap((key) => {
            const problem = identifierProblem(key)
            return problem === undefined ? [] : [{ path: [key], message: `key ${problem}` }]
          }),
        { jsonSchema: { propertyNames: { pattern: IDENTIFIER.source, minLength: 1, maxLength: 64 } } },
      ),
    )

/** Any JSON object, as a stored `jsonb` object reads back. */
export const JsonRecord = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** A JSON object whose serialized form is at most `max` characters. */
export const JsonObject = (max: number) =>
  JsonRecord.annotations(object).pipe(
    Schema.filter((o) => {
      const problem = jsonProblem(o)
      if (problem !== undefined) return problem
      return JSON.stringify(o).length <= max
        ? undefined
        : `serialized length must be at most ${max} characters`
    }),
  )

/** A PATCH body: at least one field set (an empty one would change nothing and say nothing). */
export const nonEmptyPatch =
  (identifier: string) =>
  <A extends object, I, R>(self: Schema.Schema<A, I, R>) =>
    self.pipe(
      Schema.filter((patch) => (Object.keys(patch).length > 0 ? undefined : "must set at least one field")),
      Schema.annotations({ identifier }),
    )

/** Unknown fields are rejected and every issue is reported. */
export const strict = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const

/** An integer query parameter within bounds. */
export const IntParam = (min: number, max: number) =>
  Schema.compose(
    // plain decimal digits only: Number() would also take "0x10", "1e3" or " 5"
    Str.pipe(Schema.pattern(/^[+-]?\d{1,16}$/, { message: () => "must be an integer" })).annotations({
      jsonSchema: { type: "integer", minimum: min, maximum: max },
    }),
    Schema.NumberFromString,
  ).pipe(
    Schema.int({ message: () => "must be an integer" }),
    Schema.between(min, max, { message: () => `must be between ${min} and ${max}` }),
  )

/** A boolean query parameter: exactly `true` or `false` on the wire, documented as a boolean. */
export const BoolParam = Schema.transform(
  Schema.Literal("true", "false").annotations({ message: () => 'must be "true" or "false"' }),
  Schema.Boolean,
  { strict: true, decode: (s) => s === "true", encode: (b) => (b ? "true" : "false") },
).annotations({ jsonSchema: { type: "boolean" } })
