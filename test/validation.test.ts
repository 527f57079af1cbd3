/** The Domain schemas decoded directly (no HTTP, no database): SPEC §5 rules and readable issues. */
import { describe, expect, test } from "bun:test"
import { Either, JSONSchema, ParseResult, Schema } from "effect"
import {
  Agent,
  Behaviors,
  CreateAgent,
  enumOptions,
  Metadata,
  OutputSchema,
  OutputSchemaStrict,
  Question,
  Questions,
  TypeHint,
  UpdateAgent,
  Voice,
} from "../src/Domain/Agent.ts"
import { Identifier, IntBetween, IntParam, JsonObject, Text } from "../src/Domain/Fields.ts"
import { strictSchemaProblem, violations } from "../src/Domain/JsonSchema.ts"
import { VOICES } from "../src/Domain/Voices.ts"
import { salesQualifier } from "./support/fixtures.ts"

interface Issue {
  readonly path: string
  readonly message: string
}

/** Decodes as HttpApi does: no explicit options, so the schemas' own parse options must apply. */
const decode = <A, I>(schema: Schema.Schema<A, I>, input: unknown) =>
  Schema.decodeUnknownEither(schema)(input)

const ok = <A, I>(schema: Schema.Schema<A, I>, input: unknown): A => {
  const result = decode(schema, input)
  if (Either.isLeft(result))
    throw new Error(
      `expected success, got ${JSON.stringify(ParseResult.ArrayFormatter.formatErrorSync(result.left))}`,
    )
  return result.right
}

/**
 * Every issue. A nullable field also reports its "Expected null" alternative at the same path (the
 * HTTP layer drops those); "Expected undefined" must never appear: optional fields are exact.
 */
const issues = <A, I>(schema: Schema.Schema<A, I>, input: unknown): Array<Issue> => {
  const result = decode(schema, input)
  if (Either.isRight(result)) throw new Error(`expected a failure, got ${JSON.stringify(result.right)}`)
  const all = ParseResult.ArrayFormatter.formatErrorSync(result.left).map((i) => ({
    path: i.path.map(String).join("."),
    message: i.message,
  }))
  for (const issue of all) expect(issue.message).not.toContain("Expected undefined")
  return all.filter((i) => !i.message.startsWith("Expected null,"))
}

/** The first failing path and its message. */
const first = <A, I>(schema: Schema.Schema<A, I>, input: unknown): Issue => issues(schema, input)[0]

const base = { name: "Agent", instructions: "Be helpful." }
const s = (n: number) => "a".repeat(n)

describe("Fields", () => {
  test("Text trims before checking bounds", () => {
    const T = Text(2, 5)
    expect(ok(T, "  ab  ")).toBe("ab")
    expect(ok(T, "abcde")).toBe("abcde")
    expect(first(T, " a ")).toEqual({ path: "", message: "must be at least 2 characters" })
    expect(first(T, "abcdef")).toEqual({ path: "", message: "must be at most 5 characters" })
    expect(first(Text(1, 5), "   ")).toEqual({ path: "", message: "must not be empty" })
    expect(first(T, 12)).toEqual({ path: "", message: "must be a string" })
    expect(ok(Text(0, 5), "")).toBe("")
  })

  test("IntBetween", () => {
    const I = IntBetween(5, 60)
    expect(ok(I, 5)).toBe(5)
    expect(ok(I, 60)).toBe(60)
    expect(first(I, 4).message).toBe("must be between 5 and 60")
    expect(first(I, 61).message).toBe("must be between 5 and 60")
    expect(first(I, 5.5).message).toBe("must be an integer")
    expect(first(I, "10").message).toBe("must be a number")
  })

  test("IntParam (query strings)", () => {
    const P = IntParam(1, 100)
    expect(ok(P, "1")).toBe(1)
    expect(ok(P, "100")).toBe(100)
    expect(ok(P, "+7")).toBe(7)
    for (const bad of ["0", "101", "abc", "1.5", "-1", "", " 5", "5 ", "1e1", "0x10", "Infinity"])
      expect(issues(P, bad)).toEqual([
        {
          path: "",
          message:
            bad === "0" || bad === "101" || bad === "-1" ? "must be between 1 and 100" : "must be an integer",
        },
      ])
  })

  test("Identifier: 1–64 characters, a letter then letters, digits, underscores", () => {
    expect(ok(Identifier, "a")).toBe("a")
    expect(ok(Identifier, `A${s(63)}`)).toBe(`A${s(63)}`)
    expect(ok(Identifier, "snake_Case_9")).toBe("snake_Case_9")
    expect(first(Identifier, "").message).toBe("must not be empty")
    expect(first(Identifier, `A${s(64)}`).message).toBe("must be at most 64 characters")
    for (const bad of ["9a", "_a", "a-b", "a b", "é"])
      expect(first(Identifier, bad).message).toBe(
        "must start with a letter and contain only letters, digits and underscores",
      )
  })

  test("JsonObject: an object, serialized length bounded", () => {
    const J = JsonObject(20)
    expect(ok(J, { a: [1, { b: null }] })).toEqual({ a: [1, { b: null }] })
    expect(first(J, { a: s(20) }).message).toBe("serialized length must be at most 20 characters")
    for (const bad of [[], "x", 1, null])
      expect(first(J, bad)).toEqual({ path: "", message: "must be a JSON object" })
  })
})

describe("CreateAgent", () => {
  test("decodes the Sales Qualifier example unchanged", () => {
    const sales = salesQualifier
    expect(ok(CreateAgent, sales)).toEqual(sales as never)
  })

  test("only name and instructions are required; absent optionals stay absent", () => {
    expect(ok(CreateAgent, base)).toEqual(base)
    expect(issues(CreateAgent, {})).toEqual([
      { path: "name", message: "is missing" },
      { path: "instructions", message: "is missing" },
    ])
  })

  test("strings are trimmed", () => {
    const got = ok(CreateAgent, {
      name: "  x  ",
      instructions: " y ",
      language: " de ",
      extraction_model: " m ",
    })
    expect(got).toEqual({ name: "x", instructions: "y", language: "de", extraction_model: "m" })
  })

  test.each([
    ["name", { name: s(200) }, { name: s(201) }],
    ["instructions", { instructions: s(16_000) }, { instructions: s(16_001) }],
    ["language", { language: "en" }, { language: "e" }],
    ["language", { language: s(32) }, { language: s(33) }],
    ["purpose", { purpose: s(200) }, { purpose: s(201) }],
    ["extraction_model", { extraction_model: s(128) }, { extraction_model: s(129) }],
    ["extraction_model", { extraction_model: "m" }, { extraction_model: "" }],
    ["name", { name: "x" }, { name: "   " }],
  ])("%s: %o ok, %o rejected", (path, good, bad) => {
    ok(CreateAgent, { ...base, ...good })
    expect(first(CreateAgent, { ...base, ...bad }).path).toBe(path)
  })

  test("nullable fields accept null on create", () => {
    const got = ok(CreateAgent, {
      ...base,
      purpose: null,
      output_schema_strict: null,
      extraction_model: null,
      voice: null,
    })
    expect(got).toMatchObject({
      purpose: null,
      output_schema_strict: null,
      extraction_model: null,
      voice: null,
    })
  })

  test("unknown fields are rejected at their own path, and so is is_active", () => {
    expect(first(CreateAgent, { ...base, foo: 1 }).path).toBe("foo")
    expect(first(CreateAgent, { ...base, is_active: false }).path).toBe("is_active")
    expect(first(CreateAgent, { ...base, behaviors: { foo: 1 } }).path).toBe("behaviors.foo")
    expect(first(CreateAgent, { ...base, voice: { foo: 1 } }).path).toBe("voice.foo")
    expect(
      first(CreateAgent, { ...base, questions: [{ key: "a", ask: "b", type: "text", foo: 1 }] }).path,
    ).toBe("questions.0.foo")
  })

  test("every issue is reported, in order, with short messages", () => {
    const all = issues(CreateAgent, {
      name: s(201),
      instructions: "",
      behaviors: { tone: "x", silence_timeout_seconds: 1 },
      metadata: { k: 1 },
    })
    expect(all).toEqual([
      { path: "name", message: "must be at most 200 characters" },
      { path: "instructions", message: "must not be empty" },
      {
        path: "behaviors.tone",
        message: 'must be one of "professional", "friendly", "neutral", "empathetic"; got "x"',
      },
      { path: "behaviors.silence_timeout_seconds", message: "must be between 5 and 60" },
      { path: "metadata.k", message: "must be a string" },
    ])
  })

  test("a non-object body is one short issue", () => {
    for (const bad of [[], null, "x", 1])
      expect(issues(CreateAgent, bad)).toEqual([{ path: "", message: "must be a JSON object" }])
  })

  test("type mismatches never dump the schema or a large value", () => {
    const big = { huge: s(5000) }
    for (const input of [
      { ...base, behaviors: [big] },
      { ...base, questions: big },
      { ...base, voice: [big] },
      { ...base, name: big },
      { ...base, metadata: [big] },
      { ...base, output_schema: [big] },
      { ...base, output_schema_strict: [big] },
    ])
      for (const issue of issues(CreateAgent, input)) {
        expect(issue.message.length).toBeLessThan(120)
        expect(issue.message).not.toContain("readonly")
      }
  })
})

describe("Question and Questions", () => {
  const q = (fields: Record<string, unknown>) => ({ key: "q", ask: "Why?", type: "text", ...fields })

  test("valid questions of every type", () => {
    for (const type of ["text", "number", "boolean", "date"]) ok(Question, q({ type }))
    expect(ok(Question, q({ type: "enum", options: [" a ", "b"] }))).toEqual(
      q({ type: "enum", options: ["a", "b"] }) as never,
    )
    ok(Question, q({ type: "number", min: -1.5, max: 1.5 }))
    ok(Question, q({ type: "number", min: 2, max: 2 }))
  })

  test("type enum needs non-empty options; options are non-empty strings, at most 64", () => {
    const message = "is required and must not be empty for an enum question"
    expect(first(Question, q({ type: "enum" }))).toEqual({ path: "options", message })
    expect(first(Question, q({ type: "enum", options: [] }))).toEqual({ path: "options", message })
    expect(first(Question, q({ type: "enum", options: ["a", " "] }))).toEqual({
      path: "options.1",
      message: "must not be empty",
    })
    ok(Question, q({ type: "enum", options: Array.from({ length: 64 }, (_, i) => `o${i}`) }))
    expect(
      first(Question, q({ type: "enum", options: Array.from({ length: 65 }, (_, i) => `o${i}`) })),
    ).toEqual({
      path: "options",
      message: "must have at most 64 options",
    })
    expect(first(Question, q({ type: "enum", options: "a,b" }))).toEqual({
      path: "options",
      message: "must be an array of strings",
    })
  })

  test("type must be one of the five", () => {
    expect(first(Question, q({ type: "choice" }))).toEqual({
      path: "type",
      message: 'must be one of "text", "number", "boolean", "date", "enum"; got "choice"',
    })
  })

  test("min/max finite and min ≤ max", () => {
    expect(first(Question, q({ type: "number", min: 3, max: 2 }))).toEqual({
      path: "min",
      message: "must be less than or equal to max",
    })
    expect(first(Question, q({ type: "number", min: Number.POSITIVE_INFINITY }))).toEqual({
      path: "min",
      message: "must be a finite number",
    })
    expect(first(Question, q({ type: "number", max: Number.NaN }))).toEqual({
      path: "max",
      message: "must be a finite number",
    })
    expect(first(Question, q({ type: "number", max: "3" }))).toEqual({
      path: "max",
      message: "must be a number",
    })
  })

  test("key and ask bounds", () => {
    ok(Question, q({ key: `k${s(63)}`, ask: s(2000) }))
    expect(first(Question, q({ key: `k${s(64)}` })).path).toBe("key")
    expect(first(Question, q({ key: "2nd" })).path).toBe("key")
    expect(first(Question, q({ ask: s(2001) }))).toEqual({
      path: "ask",
      message: "must be at most 2000 characters",
    })
    expect(first(Question, q({ ask: "" }))).toEqual({ path: "ask", message: "must not be empty" })
  })

  test("at most 64 questions, keys unique", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => q({ key: `q${i}` }))
    ok(Questions, many(64))
    expect(first(Questions, many(65))).toEqual({ path: "", message: "must have at most 64 questions" })
    expect(first(Questions, [q({}), q({ key: "other" }), q({})])).toEqual({
      path: "2.key",
      message: 'duplicate question key "q"',
    })
  })
})

describe("Behaviors", () => {
  test("every field at its bounds", () => {
    ok(Behaviors, {
      greeting: s(2000),
      tone: "empathetic",
      max_duration_seconds: 1800,
      allow_interruptions: false,
      end_conversation_after_questions: true,
      speaking_pace: "slow",
      response_length: "detailed",
      escalation_phrase: s(2000),
      follow_up_enabled: true,
      silence_timeout_seconds: 60,
      closing_message: s(4000),
      require_all_questions: false,
    })
    ok(Behaviors, {
      greeting: "",
      max_duration_seconds: 60,
      silence_timeout_seconds: 5,
      escalation_phrase: "x",
      closing_message: "x",
    })
    ok(Behaviors, {})
  })

  test.each([
    ["greeting", s(2001), "must be at most 2000 characters"],
    ["tone", "grumpy", 'must be one of "professional", "friendly", "neutral", "empathetic"; got "grumpy"'],
    ["max_duration_seconds", 59, "must be between 60 and 1800"],
    ["max_duration_seconds", 1801, "must be between 60 and 1800"],
    ["max_duration_seconds", 90.5, "must be an integer"],
    ["allow_interruptions", "yes", "must be true or false"],
    ["end_conversation_after_questions", 0, "must be true or false"],
    ["speaking_pace", "medium", 'must be one of "slow", "normal", "fast"; got "medium"'],
    ["response_length", "long", 'must be one of "brief", "moderate", "detailed"; got "long"'],
    ["escalation_phrase", "", "must not be empty"],
    ["escalation_phrase", s(2001), "must be at most 2000 characters"],
    ["follow_up_enabled", null, "must be true or false"],
    ["silence_timeout_seconds", 4, "must be between 5 and 60"],
    ["silence_timeout_seconds", 61, "must be between 5 and 60"],
    ["closing_message", " ", "must not be empty"],
    ["closing_message", s(4001), "must be at most 4000 characters"],
    ["require_all_questions", "true", "must be true or false"],
  ])("%s = %p → %s", (field, value, message) => {
    expect(issues(Behaviors, { [field]: value })).toEqual([{ path: field, message }])
  })

  test("unknown fields and non-objects", () => {
    expect(first(Behaviors, { mood: "x" }).path).toBe("mood")
    expect(issues(Behaviors, null)).toEqual([{ path: "", message: "must be a JSON object" }])
  })
})

describe("output_schema", () => {
  test("type hints", () => {
    for (const hint of [
      "text",
      "number",
      "boolean",
      "date",
      "enum:a",
      "enum:a,b",
      "enum: a , b ",
      `enum:${s(195)}`,
    ])
      ok(TypeHint, hint)
    const message = 'must be "text", "number", "boolean", "date" or "enum:a,b,..."'
    for (const hint of ["string", "Text", "int", "enum", "text " + "x"])
      expect(first(TypeHint, hint).message).toBe(message)
    expect(first(TypeHint, "enum:").message).toBe("enum needs at least one option")
    expect(first(TypeHint, "enum: , ").message).toBe("enum needs at least one option")
    expect(first(TypeHint, `enum:${s(196)}`).message).toBe("must be at most 200 characters")
    expect(first(TypeHint, "").message).toBe("must not be empty")
  })

  test("enumOptions splits and trims", () => {
    expect(enumOptions("enum: a, b ,,c ")).toEqual(["a", "b", "c"])
    expect(enumOptions("enum:")).toEqual([])
  })

  test("keys: identifiers, at most 64 of them, each reported at its own path", () => {
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "text"]))
    ok(OutputSchema, keys(64))
    expect(first(OutputSchema, keys(65))).toEqual({ path: "", message: "must have at most 64 keys" })
    ok(OutputSchema, { [`k${s(63)}`]: "text" })
    expect(issues(OutputSchema, { "1a": "text", ok: "text", "b-c": "date" })).toEqual([
      {
        path: "1a",
        message: "key must start with a letter and contain only letters, digits and underscores",
      },
      {
        path: "b-c",
        message: "key must start with a letter and contain only letters, digits and underscores",
      },
    ])
    expect(first(OutputSchema, { [`k${s(64)}`]: "text" })).toEqual({
      path: `k${s(64)}`,
      message: "key must be at most 64 characters",
    })
    expect(first(OutputSchema, { a: "string" }).path).toBe("a")
    expect(first(OutputSchema, { a: 1 })).toEqual({ path: "a", message: "must be a string" })
  })
})

describe("output_schema_strict", () => {
  const every = {
    type: "object",
    title: "t",
    description: "d",
    nullable: false,
    required: ["a"],
    propertyOrdering: ["a", "b", "c", "d"],
    properties: {
      a: { type: "string", format: "date", enum: ["2024-01-01"] },
      b: { type: "array", items: { type: "number", minimum: 0, maximum: 1 }, minItems: 1, maxItems: 3 },
      c: { anyOf: [{ type: "string" }, { type: "integer" }], nullable: true },
      d: { type: "object", properties: { e: { type: "boolean", nullable: true } } },
    },
  }

  test("a valid object schema using every supported keyword", () => {
    expect(strictSchemaProblem(every)).toBeUndefined()
    expect(ok(OutputSchemaStrict, every)).toEqual(every)
  })

  test.each([
    [{ type: "array", items: {} }, 'must be a JSON Schema of an object (type: "object")'],
    [{ properties: {} }, 'must be a JSON Schema of an object (type: "object")'],
    [
      { type: "object", additionalProperties: false },
      "additionalProperties: keyword is not supported by Gemini structured output",
    ],
    [{ type: "object", $ref: "#/x" }, "$ref: keyword is not supported by Gemini structured output"],
    [
      { type: "object", properties: { a: { type: "string", pattern: "^x" } } },
      "properties.a.pattern: keyword is not supported by Gemini structured output",
    ],
    [
      { type: "object", properties: { a: { type: "array", items: { oneOf: [] } } } },
      "properties.a.items.oneOf: keyword is not supported by Gemini structured output",
    ],
    [
      { type: "object", properties: { a: { anyOf: [{ type: "string" }, { const: 1 }] } } },
      "properties.a.anyOf[1].const: keyword is not supported by Gemini structured output",
    ],
    [{ type: "object", properties: [] }, 'properties: must name at least one property when type is "object"'],
    [
      { type: "object", properties: { a: { anyOf: {} } } },
      "properties.a.anyOf: must be a non-empty list of schemas",
    ],
    [{ type: "object", properties: { a: "string" } }, "properties.a: must be a JSON Schema object"],
    [
      { type: "object", properties: { a: { type: "string", nullable: "yes" } } },
      "properties.a.nullable: must be true or false",
    ],
  ])("%o → %s", (schema, message) => {
    expect(strictSchemaProblem(schema)).toBe(message)
    expect(issues(OutputSchemaStrict, schema)).toEqual([{ path: "", message }])
  })

  test("nesting is limited to 32 levels", () => {
    const nested = (depth: number) => {
      let node: Record<string, unknown> = { type: "string" }
      for (let i = 1; i < depth; i++) node = { type: "array", items: node }
      return node
    }
    expect(strictSchemaProblem(nested(32))).toBe('must be a JSON Schema of an object (type: "object")')
    expect(strictSchemaProblem({ type: "object", properties: { a: nested(31) } })).toBeUndefined()
    expect(strictSchemaProblem({ type: "object", properties: { a: nested(32) } })).toEndWith(
      "schemas nested deeper than 32 levels are not supported",
    )
  })

  test("schemas that do not compile are rejected", () => {
    for (const schema of [
      { type: "object", properties: { a: { type: "number", minimum: "0" } } },
      { type: "object", properties: { a: { type: "array", items: { type: "string" }, minItems: -1 } } },
    ])
      expect(strictSchemaProblem(schema)).toStartWith("is not a valid JSON Schema:")
  })

  // What the Gemini API answers 400 for, and what @google/genai refuses before sending: caught when
  // the agent is saved, not when every extraction of it fails.
  const props = (a: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    type: "object",
    properties: { a },
    ...extra,
  })
  test.each([
    [{ type: "object" }, 'properties: must name at least one property when type is "object"'],
    [{ type: "object", properties: {} }, 'properties: must name at least one property when type is "object"'],
    [
      props({ type: "object", properties: {} }),
      'properties.a.properties: must name at least one property when type is "object"',
    ],
    [props({ type: "integer", enum: [1, 2] }), 'properties.a.enum: only allowed when type is "string"'],
    [props({ type: "string", enum: [1, 2] }), "properties.a.enum: must be a non-empty list of strings"],
    [props({ type: "string", enum: [] }), "properties.a.enum: must be a non-empty list of strings"],
    [props({ type: "string", enum: "x" }), "properties.a.enum: must be a non-empty list of strings"],
    [
      props({ type: "string", properties: { b: { type: "string" } } }),
      'properties.a.properties: only allowed when type is "object"',
    ],
    [
      props({ type: "array", items: { type: "string" }, required: ["b"] }),
      'properties.a.required: only allowed when type is "object"',
    ],
    [
      props({ type: "string", items: { type: "string" } }),
      'properties.a.items: only allowed when type is "array"',
    ],
    [
      props({ type: "string", minimum: 1 }),
      'properties.a.minimum: only allowed when type is "number" or "integer"',
    ],
    [props({ type: "array" }), 'properties.a.items: is required when type is "array"'],
    [props({ type: "null" }), 'properties.a.type: "null" cannot be the only type; use nullable: true'],
    [
      props({ type: "strin" }),
      'properties.a.type: must be one of "string" or "number" or "integer" or "boolean" or "array" or "object"',
    ],
    [
      props({ type: 5 }),
      'properties.a.type: must be one of "string" or "number" or "integer" or "boolean" or "array" or "object"',
    ],
    [props({ type: ["string", "number"] }), 'properties.a.type: a list of types must be one type and "null"'],
    [props({ description: "no type" }), "properties.a: type is required"],
    [
      props({ type: "string", anyOf: [{ type: "string" }, { type: "number" }] }),
      "properties.a: type and anyOf cannot both be set",
    ],
    [props({ anyOf: [] }), "properties.a.anyOf: must be a non-empty list of schemas"],
    [
      props({ type: "string", format: "email" }),
      'properties.a.format: must be "enum" or "date" or "date-time" for type "string"',
    ],
    [props({ type: "boolean", format: "date" }), 'properties.a.format: not supported for type "boolean"'],
    [props({ type: "string" }, { required: ["b"] }), 'required: "b" is not one of the properties'],
    [props({ type: "string" }, { required: "a" }), "required: must be a list of property names"],
    [
      props({ type: "string" }, { propertyOrdering: ["a", "c"] }),
      'propertyOrdering: "c" is not one of the properties',
    ],
  ])("the Gemini subset: %o → %s", (schema, message) => {
    expect(strictSchemaProblem(schema)).toBe(message)
  })

  test("JSON Schema's spellings of 'or null' are accepted (the SDK turns them into nullable)", () => {
    expect(strictSchemaProblem(props({ type: ["string", "null"] }))).toBeUndefined()
    expect(strictSchemaProblem(props({ anyOf: [{ type: "null" }, { type: "integer" }] }))).toBeUndefined()
    expect(violations(props({ type: ["string", "null"] }, { required: ["a"] }), { a: null })).toEqual([])
  })

  test("serialized at most 48000 characters", () => {
    const shell = { type: "object", properties: { a: { type: "string" } } }
    const sized = (n: number) => ({
      ...shell,
      description: s(n - JSON.stringify({ ...shell, description: "" }).length),
    })
    ok(OutputSchemaStrict, sized(48_000))
    expect(first(OutputSchemaStrict, sized(48_001)).message).toBe(
      "serialized length must be at most 48000 characters",
    )
  })

  test("violations: nullable means 'or null', also with enum and anyOf", () => {
    expect(violations(every, { a: "2024-01-01", b: [0.5], c: null, d: { e: null } })).toEqual([])
    const hints = {
      type: "object",
      required: ["size"],
      properties: { size: { type: "string", enum: ["small", "large"], nullable: true } },
    }
    expect(violations(hints, { size: null })).toEqual([])
    expect(violations(hints, { size: "small" })).toEqual([])
    expect(violations(hints, { size: "medium" }).length).toBeGreaterThan(0)
    expect(violations(hints, {})).toEqual(["/ must have required property 'size'"])
    expect(violations(every, { a: "2024-01-01", b: [2] })).toEqual(["/b/0 must be <= 1"])
    // the same schema read again (a new object with the same content) gives the same answers
    expect(violations(structuredClone(hints), { size: null })).toEqual([])
  })
})

describe("Voice", () => {
  test("catalog names and BCP 47 language codes", () => {
    for (const name of VOICES) ok(Voice, { name })
    for (const code of ["en", "en-US", "cmn-Hans-CN", "de-CH-1996", "EN-us"])
      ok(Voice, { language_code: code })
    ok(Voice, {})
  })

  test("rejections are short and name the rule", () => {
    expect(issues(Voice, { name: "Bob" })).toEqual([
      { path: "name", message: 'must be one of the voices listed by GET /api/v1/voice/voices (e.g. "Puck")' },
    ])
    expect(first(Voice, { name: "puck" }).path).toBe("name")
    for (const code of ["e", "english", "en-", "en_US", "en-US-toolongsubtag1"])
      expect(issues(Voice, { language_code: code })).toEqual([
        { path: "language_code", message: 'must be a BCP 47 language tag such as "en-US"' },
      ])
    expect(first(Voice, { gender: "f" }).path).toBe("gender")
    expect(issues(Voice, "Puck")).toEqual([{ path: "", message: "must be a JSON object" }])
  })
})

describe("Metadata", () => {
  test("≤32 string values of ≤500 characters", () => {
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))
    ok(Metadata, keys(32))
    expect(first(Metadata, keys(33))).toEqual({ path: "", message: "must have at most 32 keys" })
    ok(Metadata, { k: s(500) })
    expect(first(Metadata, { k: s(501) })).toEqual({ path: "k", message: "must be at most 500 characters" })
    for (const value of [1, null, true, {}, []])
      expect(first(Metadata, { k: value })).toEqual({ path: "k", message: "must be a string" })
  })
})

describe("UpdateAgent", () => {
  test("any create field plus is_active, all optional", () => {
    expect(ok(UpdateAgent, { is_active: false })).toEqual({ is_active: false })
    expect(ok(UpdateAgent, { name: " n " })).toEqual({ name: "n" })
    expect(ok(UpdateAgent, { output_schema_strict: null, extraction_model: null })).toEqual({
      output_schema_strict: null,
      extraction_model: null,
    })
  })

  test("an empty patch is rejected", () => {
    expect(issues(UpdateAgent, {})).toEqual([{ path: "", message: "must set at least one field" }])
  })

  test("same bounds as create; name and instructions cannot be null", () => {
    expect(first(UpdateAgent, { name: s(201) }).path).toBe("name")
    expect(first(UpdateAgent, { name: null })).toEqual({ path: "name", message: "must be a string" })
    expect(first(UpdateAgent, { instructions: "" }).path).toBe("instructions")
    expect(first(UpdateAgent, { is_active: "no" })).toEqual({
      path: "is_active",
      message: "must be true or false",
    })
    expect(first(UpdateAgent, { agent_id: "x" }).path).toBe("agent_id")
    expect(issues(UpdateAgent, [])).toEqual([{ path: "", message: "must be a JSON object" }])
  })
})

describe("Agent (response schema)", () => {
  test("encodes a stored agent", () => {
    const agent = {
      agent_id: crypto.randomUUID(),
      name: "A",
      instructions: "B",
      language: "en-US",
      purpose: null,
      questions: [{ key: "q", ask: "Why?", type: "enum", options: ["a"] }],
      behaviors: { tone: "friendly" },
      output_schema: { q: "enum:a" },
      output_schema_strict: null,
      extraction_model: null,
      voice: { name: "Puck" },
      metadata: {},
      system_instruction: "S",
      is_active: true,
      created_at: 1,
      updated_at: 2,
    }
    const decoded = ok(Agent, agent)
    expect(Schema.encodeSync(Agent)(decoded)).toEqual(agent as never)
  })

  test("the request schemas document their bounds as JSON Schema", () => {
    const json = JSON.stringify(JSONSchema.make(CreateAgent))
    expect(json).toContain('"maxLength":200')
    expect(json).toContain('"maxLength":16000')
    expect(json).toContain('"maxProperties":64')
    expect(json).toContain('"pattern":"^[A-Za-z][A-Za-z0-9_]*$"')
  })
})
