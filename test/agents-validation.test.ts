/** Every validation bound of SPEC §5 over HTTP, both sides of each limit, and the 400 body's shape. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { agentCount as countAgents } from "./support/rows.ts"
import { startServer, type TestServer } from "./support/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server.dispose())

const AGENTS = "/api/v1/voice/agents"
const base = { name: "Agent", instructions: "Be helpful." }
const s = (n: number, c = "a") => c.repeat(n)
const keys = (n: number, value: string) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]))
const questions = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ key: `q${i}`, ask: "Why?", type: "text" }))
const q = (fields: Record<string, unknown>) => ({
  questions: [{ key: "q", ask: "Why?", type: "text", ...fields }],
})
const strictOf = (fields: Record<string, unknown>) => ({
  output_schema_strict: { type: "object", ...fields },
})

/** A strict schema whose serialized form is exactly `n` characters. */
const strictOfLength = (n: number) => {
  const shell = { type: "object", properties: { a: { type: "string" } } }
  const overhead = JSON.stringify({ ...shell, description: "" }).length
  const schema = { ...shell, description: s(n - overhead) }
  expect(JSON.stringify(schema).length).toBe(n)
  return { output_schema_strict: schema }
}

type Case = readonly [label: string, body: Record<string, unknown> | string, expected: "ok" | string]

const cases: Record<string, ReadonlyArray<Case>> = {
  name: [
    ["200 chars", { name: s(200) }, "ok"],
    ["201 chars", { name: s(201) }, "name"],
    ["200 chars plus surrounding blanks (trimmed first)", { name: `  ${s(200)}  ` }, "ok"],
    ["blank", { name: "   " }, "name"],
    ["empty", { name: "" }, "name"],
    ["missing", JSON.stringify({ instructions: "x" }), "name"],
    ["not a string", { name: 5 }, "name"],
    ["null", { name: null }, "name"],
  ],
  instructions: [
    ["16000 chars", { instructions: s(16_000) }, "ok"],
    ["16001 chars", { instructions: s(16_001) }, "instructions"],
    ["1 char", { instructions: "x" }, "ok"],
    ["blank", { instructions: " \n\t " }, "instructions"],
    ["missing", JSON.stringify({ name: "x" }), "instructions"],
  ],
  language: [
    ["2 chars", { language: "en" }, "ok"],
    ["32 chars", { language: s(32) }, "ok"],
    ["1 char", { language: "e" }, "language"],
    ["1 char after trimming", { language: " e " }, "language"],
    ["33 chars", { language: s(33) }, "language"],
  ],
  purpose: [
    ["200 chars", { purpose: s(200) }, "ok"],
    ["201 chars", { purpose: s(201) }, "purpose"],
    ["empty", { purpose: "" }, "ok"],
    ["null", { purpose: null }, "ok"],
    ["not a string", { purpose: 1 }, "purpose"],
  ],
  questions: [
    ["64 questions", { questions: questions(64) }, "ok"],
    ["65 questions", { questions: questions(65) }, "questions"],
    ["empty list", { questions: [] }, "ok"],
    ["not an array", { questions: { key: "q" } }, "questions"],
    ["key of 64 chars", q({ key: `k${s(63)}` }), "ok"],
    ["key of 65 chars", q({ key: `k${s(64)}` }), "questions[0].key"],
    ["key starting with a digit", q({ key: "1st" }), "questions[0].key"],
    ["key with a dash", q({ key: "first-name" }), "questions[0].key"],
    ["empty key", q({ key: "" }), "questions[0].key"],
    ["key with underscores and digits", q({ key: "Budget_2025_usd" }), "ok"],
    [
      "duplicate keys",
      {
        questions: [
          { key: "dup", ask: "a", type: "text" },
          { key: "dup", ask: "b", type: "text" },
        ],
      },
      "questions[1].key",
    ],
    ["ask of 2000 chars", q({ ask: s(2000) }), "ok"],
    ["ask of 2001 chars", q({ ask: s(2001) }), "questions[0].ask"],
    ["blank ask", q({ ask: "  " }), "questions[0].ask"],
    ["missing ask", { questions: [{ key: "q", type: "text" }] }, "questions[0].ask"],
    [
      "every type",
      { questions: ["text", "number", "boolean", "date"].map((type) => ({ key: type, ask: "?", type })) },
      "ok",
    ],
    ["unknown type", q({ type: "choice" }), "questions[0].type"],
    ["enum without options", q({ type: "enum" }), "questions[0].options"],
    ["enum with no options", q({ type: "enum", options: [] }), "questions[0].options"],
    [
      "enum with 64 options",
      q({ type: "enum", options: Array.from({ length: 64 }, (_, i) => `o${i}`) }),
      "ok",
    ],
    [
      "enum with 65 options",
      q({ type: "enum", options: Array.from({ length: 65 }, (_, i) => `o${i}`) }),
      "questions[0].options",
    ],
    ["an empty option", q({ type: "enum", options: ["yes", ""] }), "questions[0].options[1]"],
    ["a blank option", q({ type: "enum", options: [" ", "no"] }), "questions[0].options[0]"],
    ["options not strings", q({ type: "enum", options: [1, 2] }), "questions[0].options[0]"],
    ["min ≤ max", q({ type: "number", min: -5.5, max: 10 }), "ok"],
    ["min = max", q({ type: "number", min: 3, max: 3 }), "ok"],
    ["min > max", q({ type: "number", min: 10, max: 1 }), "questions[0].min"],
    ["min not a number", q({ type: "number", min: "1" }), "questions[0].min"],
    [
      "non-finite min (1e999 parses to Infinity)",
      `{"name":"a","instructions":"b","questions":[{"key":"q","ask":"?","type":"number","min":1e999}]}`,
      "questions[0].min",
    ],
    [
      "non-finite max",
      `{"name":"a","instructions":"b","questions":[{"key":"q","ask":"?","type":"number","max":-1e999}]}`,
      "questions[0].max",
    ],
    ["unknown question field", q({ required: true }), "questions[0].required"],
    // SPEC §5 only requires options for enum; it does not forbid them (or min/max) elsewhere
    ["options on a text question", q({ options: ["a"] }), "ok"],
    ["min/max on a date question", q({ type: "date", min: 1, max: 2 }), "ok"],
  ],
  behaviors: [
    ["empty object", { behaviors: {} }, "ok"],
    ["not an object", { behaviors: "friendly" }, "behaviors"],
    ["null", { behaviors: null }, "behaviors"],
    ["unknown field", { behaviors: { mood: "happy" } }, "behaviors.mood"],
    ["greeting 2000", { behaviors: { greeting: s(2000) } }, "ok"],
    ["greeting 2001", { behaviors: { greeting: s(2001) } }, "behaviors.greeting"],
    ...["professional", "friendly", "neutral", "empathetic"].map(
      (tone): Case => [`tone ${tone}`, { behaviors: { tone } }, "ok"],
    ),
    ["tone grumpy", { behaviors: { tone: "grumpy" } }, "behaviors.tone"],
    ["tone wrong case", { behaviors: { tone: "Friendly" } }, "behaviors.tone"],
    ["max_duration_seconds 60", { behaviors: { max_duration_seconds: 60 } }, "ok"],
    ["max_duration_seconds 1800", { behaviors: { max_duration_seconds: 1800 } }, "ok"],
    [
      "max_duration_seconds 59",
      { behaviors: { max_duration_seconds: 59 } },
      "behaviors.max_duration_seconds",
    ],
    [
      "max_duration_seconds 1801",
      { behaviors: { max_duration_seconds: 1801 } },
      "behaviors.max_duration_seconds",
    ],
    [
      "max_duration_seconds 600.5",
      { behaviors: { max_duration_seconds: 600.5 } },
      "behaviors.max_duration_seconds",
    ],
    [
      "max_duration_seconds string",
      { behaviors: { max_duration_seconds: "600" } },
      "behaviors.max_duration_seconds",
    ],
    ...(
      [
        "allow_interruptions",
        "end_conversation_after_questions",
        "follow_up_enabled",
        "require_all_questions",
        "enforce_max_duration",
      ] as const
    ).flatMap(
      (field): Array<Case> => [
        [`${field} true`, { behaviors: { [field]: true } }, "ok"],
        [`${field} false`, { behaviors: { [field]: false } }, "ok"],
        [`${field} "true"`, { behaviors: { [field]: "true" } }, `behaviors.${field}`],
        [`${field} 1`, { behaviors: { [field]: 1 } }, `behaviors.${field}`],
      ],
    ),
    ...["slow", "normal", "fast"].map(
      (pace): Case => [`speaking_pace ${pace}`, { behaviors: { speaking_pace: pace } }, "ok"],
    ),
    ["speaking_pace medium", { behaviors: { speaking_pace: "medium" } }, "behaviors.speaking_pace"],
    ...["brief", "moderate", "detailed"].map(
      (length): Case => [`response_length ${length}`, { behaviors: { response_length: length } }, "ok"],
    ),
    ["response_length long", { behaviors: { response_length: "long" } }, "behaviors.response_length"],
    ["escalation_phrase 1", { behaviors: { escalation_phrase: "x" } }, "ok"],
    ["escalation_phrase 2000", { behaviors: { escalation_phrase: s(2000) } }, "ok"],
    ["escalation_phrase 2001", { behaviors: { escalation_phrase: s(2001) } }, "behaviors.escalation_phrase"],
    ["escalation_phrase empty", { behaviors: { escalation_phrase: "" } }, "behaviors.escalation_phrase"],
    ["silence_timeout_seconds 5", { behaviors: { silence_timeout_seconds: 5 } }, "ok"],
    ["silence_timeout_seconds 60", { behaviors: { silence_timeout_seconds: 60 } }, "ok"],
    [
      "silence_timeout_seconds 4",
      { behaviors: { silence_timeout_seconds: 4 } },
      "behaviors.silence_timeout_seconds",
    ],
    [
      "silence_timeout_seconds 61",
      { behaviors: { silence_timeout_seconds: 61 } },
      "behaviors.silence_timeout_seconds",
    ],
    ["closing_message 1", { behaviors: { closing_message: "x" } }, "ok"],
    ["closing_message 4000", { behaviors: { closing_message: s(4000) } }, "ok"],
    ["closing_message 4001", { behaviors: { closing_message: s(4001) } }, "behaviors.closing_message"],
    ["closing_message blank", { behaviors: { closing_message: "  " } }, "behaviors.closing_message"],
  ],
  output_schema: [
    ["64 keys", { output_schema: keys(64, "text") }, "ok"],
    ["65 keys", { output_schema: keys(65, "text") }, "output_schema"],
    ["key of 64 chars", { output_schema: { [`k${s(63)}`]: "text" } }, "ok"],
    ["key of 65 chars", { output_schema: { [`k${s(64)}`]: "text" } }, `output_schema.k${s(64)}`],
    ["key starting with a digit", { output_schema: { "1a": "text" } }, "output_schema.1a"],
    ["key with a space", { output_schema: { "a b": "text" } }, "output_schema.a b"],
    ["empty key", { output_schema: { "": "text" } }, "output_schema."],
    [
      "every hint",
      { output_schema: { a: "text", b: "number", c: "boolean", d: "date", e: "enum:a,b", f: "enum: x , y" } },
      "ok",
    ],
    ["hint of 200 chars", { output_schema: { a: `enum:${s(195)}` } }, "ok"],
    ["hint of 201 chars", { output_schema: { a: `enum:${s(196)}` } }, "output_schema.a"],
    ['"enum:"', { output_schema: { a: "enum:" } }, "output_schema.a"],
    ['"enum: , "', { output_schema: { a: "enum: , " } }, "output_schema.a"],
    ['"string"', { output_schema: { a: "string" } }, "output_schema.a"],
    ['"Text"', { output_schema: { a: "Text" } }, "output_schema.a"],
    ["empty hint", { output_schema: { a: "" } }, "output_schema.a"],
    ["hint not a string", { output_schema: { a: 1 } }, "output_schema.a"],
    ["not an object", { output_schema: ["text"] }, "output_schema"],
  ],
  output_schema_strict: [
    [
      "every Gemini keyword",
      strictOf({
        title: "Lead",
        description: "A qualified lead",
        nullable: false,
        propertyOrdering: ["size", "tags", "when", "either"],
        required: ["size"],
        properties: {
          size: { type: "integer", format: "int32", minimum: 1, maximum: 10_000 },
          tags: { type: "array", items: { type: "string", enum: ["a", "b"] }, minItems: 0, maxItems: 5 },
          when: { type: "string", format: "date-time", nullable: true },
          either: { anyOf: [{ type: "string" }, { type: "number" }] },
        },
      }),
      "ok",
    ],
    ["minimal object", strictOf({ properties: { a: { type: "string" } } }), "ok"],
    ["no properties (Gemini: 400)", strictOf({}), "output_schema_strict"],
    [
      "numeric enum (Gemini: 400)",
      strictOf({ properties: { a: { type: "integer", enum: [1] } } }),
      "output_schema_strict",
    ],
    ["type null (SDK refuses)", strictOf({ properties: { a: { type: "null" } } }), "output_schema_strict"],
    ["serialized 48000 chars", strictOfLength(48_000), "ok"],
    ["serialized 48001 chars", strictOfLength(48_001), "output_schema_strict"],
    [
      "type array",
      { output_schema_strict: { type: "array", items: { type: "string" } } },
      "output_schema_strict",
    ],
    ["no type", { output_schema_strict: { properties: {} } }, "output_schema_strict"],
    ["additionalProperties", strictOf({ additionalProperties: false }), "output_schema_strict"],
    ["$ref", strictOf({ $ref: "#/definitions/x" }), "output_schema_strict"],
    [
      "nested pattern",
      strictOf({ properties: { a: { type: "string", pattern: "^a" } } }),
      "output_schema_strict",
    ],
    ["oneOf", strictOf({ properties: { a: { oneOf: [{ type: "string" }] } } }), "output_schema_strict"],
    ["invalid: type 5", strictOf({ properties: { a: { type: 5 } } }), "output_schema_strict"],
    ["invalid: required not an array", strictOf({ required: "a" }), "output_schema_strict"],
    [
      "invalid: enum not an array",
      strictOf({ properties: { a: { type: "string", enum: "x" } } }),
      "output_schema_strict",
    ],
    [
      "invalid: nullable not a boolean",
      strictOf({ properties: { a: { type: "string", nullable: "yes" } } }),
      "output_schema_strict",
    ],
    [
      "nested 33 levels deep",
      strictOf({
        properties: {
          a: Array.from({ length: 31 }).reduce<Record<string, unknown>>(
            (node) => ({ type: "array", items: node }),
            {
              type: "string",
            },
          ),
        },
      }),
      "output_schema_strict",
    ],
    ["not an object", { output_schema_strict: [] }, "output_schema_strict"],
    ["a string", { output_schema_strict: "{}" }, "output_schema_strict"],
    ["null", { output_schema_strict: null }, "ok"],
  ],
  extraction_model: [
    ["128 chars", { extraction_model: s(128) }, "ok"],
    ["129 chars", { extraction_model: s(129) }, "extraction_model"],
    ["empty", { extraction_model: "" }, "extraction_model"],
    ["null", { extraction_model: null }, "ok"],
  ],
  voice: [
    ["catalog name", { voice: { name: "Kore" } }, "ok"],
    ["both fields", { voice: { name: "Zubenelgenubi", language_code: "cmn-Hans-CN" } }, "ok"],
    ["empty object", { voice: {} }, "ok"],
    ["unknown name", { voice: { name: "Bob" } }, "voice.name"],
    ["name in the wrong case", { voice: { name: "puck" } }, "voice.name"],
    ["language_code en", { voice: { language_code: "en" } }, "ok"],
    ["language_code en-US", { voice: { language_code: "en-US" } }, "ok"],
    ["language_code e", { voice: { language_code: "e" } }, "voice.language_code"],
    ["language_code english_us", { voice: { language_code: "english_us" } }, "voice.language_code"],
    ["language_code en-", { voice: { language_code: "en-" } }, "voice.language_code"],
    ["unknown voice field", { voice: { gender: "female" } }, "voice.gender"],
    ["voice as a string", { voice: "Puck" }, "voice"],
  ],
  metadata: [
    ["32 keys", { metadata: keys(32, "v") }, "ok"],
    ["33 keys", { metadata: keys(33, "v") }, "metadata"],
    ["value of 500 chars", { metadata: { k: s(500) } }, "ok"],
    ["value of 501 chars", { metadata: { k: s(501) } }, "metadata.k"],
    ["number value", { metadata: { k: 5 } }, "metadata.k"],
    ["null value", { metadata: { k: null } }, "metadata.k"],
    ["nested object value", { metadata: { k: { a: "b" } } }, "metadata.k"],
    ["not an object", { metadata: ["a"] }, "metadata"],
  ],
  "top level": [
    ["unknown field", { foo: 1 }, "foo"],
    ["is_active on create", { is_active: true }, "is_active"],
    ["agent_id on create", { agent_id: crypto.randomUUID() }, "agent_id"],
  ],
}

interface ErrorBody {
  readonly error: {
    readonly type: string
    readonly code: string
    readonly message: string
    readonly request_id: string
    readonly param?: string
    readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>
  }
}

const agentCount = (orgId: string) => countAgents(server, orgId)

/** The 400 body: the envelope, `param` = first failing path, short readable issues. */
const expectInvalid = (res: Response, body: ErrorBody, param: string) => {
  expect(res.status).toBe(400)
  expect(Object.keys(body)).toEqual(["error"])
  const { error } = body
  expect(Object.keys(error).sort()).toEqual(["code", "issues", "message", "param", "request_id", "type"])
  expect(error.type).toBe("invalid_request_error")
  expect(error.code).toBe("invalid_request_body")
  expect(error.request_id).toBe(res.headers.get("x-request-id") as string)
  expect(error.param).toBe(param)
  expect(error.issues?.length).toBeGreaterThan(0)
  expect(error.issues?.[0].path).toBe(param)
  expect(error.message).toBe(`Invalid request body: ${param}: ${error.issues?.[0].message}`)
  for (const issue of error.issues ?? []) {
    expect(issue.message.length).toBeGreaterThan(0)
    // (an unknown behaviors key lists the 13 known ones: 311 characters)
    expect(issue.message.length).toBeLessThan(400)
    expect(issue.message).not.toMatch(/Expected (undefined|null)|readonly|ReadonlyArray|\{ readonly/)
  }
}

for (const [group, list] of Object.entries(cases)) {
  describe(`POST ${AGENTS}: ${group}`, () => {
    for (const [label, body, expected] of list) {
      test(`${label} → ${expected === "ok" ? "200" : `400 at ${expected}`}`, async () => {
        const { apiKey, orgId } = await server.newTenant()
        const payload = typeof body === "string" ? body : JSON.stringify({ ...base, ...body })
        const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body: payload })
        const json = (await res.json()) as ErrorBody & { data: { agent_id: string } }
        if (expected === "ok") {
          expect(res.status).toBe(200)
          expect(json.data.agent_id).toBeString()
          expect(await agentCount(orgId)).toBe(1)
        } else {
          expectInvalid(res, json, expected)
          expect(await agentCount(orgId)).toBe(0)
        }
      })
    }
  })
}

describe("PATCH applies the same bounds", () => {
  const patches: ReadonlyArray<Case> = [
    ["name 201", { name: s(201) }, "name"],
    ["blank instructions", { instructions: " " }, "instructions"],
    ["65 questions", { questions: questions(65) }, "questions"],
    ["bad tone", { behaviors: { tone: "grumpy" } }, "behaviors.tone"],
    ["bad hint", { output_schema: { a: "string" } }, "output_schema.a"],
    ["unsupported strict keyword", strictOf({ additionalProperties: true }), "output_schema_strict"],
    ["unknown voice", { voice: { name: "Bob" } }, "voice.name"],
    ["33 metadata keys", { metadata: keys(33, "v") }, "metadata"],
    ["is_active not a boolean", { is_active: "no" }, "is_active"],
    ["unknown field", { status: "active" }, "status"],
  ]
  for (const [label, body, param] of patches) {
    test(`${label} → 400 at ${param}, nothing written`, async () => {
      const { apiKey } = await server.newTenant()
      const created = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body: JSON.stringify(base) })
      const id = ((await created.json()) as { data: { agent_id: string } }).data.agent_id
      const res = await server.fetchRaw(`${AGENTS}/${id}`, {
        method: "PATCH",
        apiKey,
        body: JSON.stringify(body),
      })
      expectInvalid(res, (await res.json()) as ErrorBody, param)
      const got = (await (await server.fetchRaw(`${AGENTS}/${id}`, { apiKey })).json()) as {
        data: { updated_at: number; created_at: number; name: string }
      }
      expect(got.data.updated_at).toBe(got.data.created_at)
      expect(got.data.name).toBe(base.name)
    })
  }
})

describe("the 400 body", () => {
  test("lists every issue; param is the first", async () => {
    const { apiKey } = await server.newTenant()
    const res = await server.fetchRaw(AGENTS, {
      method: "POST",
      apiKey,
      body: JSON.stringify({ name: s(201), instructions: "", language: "e", metadata: { k: 1 } }),
    })
    const body = (await res.json()) as ErrorBody
    expect(res.status).toBe(400)
    expect(body.error.param).toBe("name")
    expect(body.error.issues?.map((i) => i.path)).toEqual(["name", "instructions", "language", "metadata.k"])
    expect(body.error.issues).toEqual([
      { path: "name", message: "must be at most 200 characters" },
      { path: "instructions", message: "must not be empty" },
      { path: "language", message: "must be at least 2 characters" },
      { path: "metadata.k", message: "must be a string" },
    ])
  })

  test("messages are short and name the rule, not the schema", async () => {
    const { apiKey } = await server.newTenant()
    const post = async (body: unknown) => {
      const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body: JSON.stringify(body) })
      return ((await res.json()) as ErrorBody).error
    }
    expect((await post({ ...base, voice: { name: "Bob" } })).issues).toEqual([
      { path: "voice.name", message: expect.stringContaining("GET /api/v1/voice/voices") },
    ])
    expect((await post({ ...base, behaviors: { tone: "grumpy" } })).issues).toEqual([
      {
        path: "behaviors.tone",
        message: 'must be one of "professional", "friendly", "neutral", "empathetic"; got "grumpy"',
      },
    ])
    expect((await post({ ...base, questions: [{ key: "q", ask: "?", type: "enum" }] })).issues).toEqual([
      { path: "questions[0].options", message: "is required and must not be empty for an enum question" },
    ])
    expect(
      (await post({ ...base, output_schema_strict: strictOf({ $ref: "#/x" }).output_schema_strict })).issues,
    ).toEqual([
      { path: "output_schema_strict", message: "$ref: keyword is not supported by Gemini structured output" },
    ])
    const numericEnum = {
      properties: { n: { type: "object", properties: { a: { type: "string", enum: [1] } } } },
    }
    expect((await post({ ...base, ...strictOf(numericEnum) })).issues).toEqual([
      {
        path: "output_schema_strict",
        message: "properties.n.properties.a.enum: must be a non-empty list of strings",
      },
    ])
    expect((await post({ ...base, behaviors: null })).issues).toEqual([
      { path: "behaviors", message: "must be a JSON object" },
    ])
    expect((await post({ ...base, output_schema: { "9x": "text" } })).issues).toEqual([
      { path: "output_schema.9x", message: expect.stringContaining("key must start with a letter") },
    ])
    const big = await post({
      ...base,
      questions: [{ key: "q", ask: "?", type: "enum", options: Array(65).fill("x") }],
    })
    expect(big.issues).toEqual([{ path: "questions[0].options", message: "must have at most 64 options" }])
  })

  test("a body that is not an object → 400 without a param", async () => {
    const { apiKey } = await server.newTenant()
    for (const body of ["[]", "null", '"text"', "42"]) {
      const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body })
      expect(res.status).toBe(400)
      const { error } = (await res.json()) as ErrorBody
      expect(error.code).toBe("invalid_request_body")
      expect(error.param).toBeUndefined()
      expect(error.issues).toEqual([{ path: "", message: "must be a JSON object" }])
    }
  })
})
