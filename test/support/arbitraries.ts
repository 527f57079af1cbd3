/**
 * fast-check arbitraries for the HTTP property tests (test/property.test.ts): valid values at the
 * bounds of SPEC §5/§6, invalid ones just past them or of the wrong type, and hostile keys, ids,
 * query strings and bytes.
 */
import fc from "fast-check"
import { CreateAgent } from "../../src/Domain/Agent.ts"
import { unstorable } from "../../src/Domain/Fields.ts"
import { StartSession } from "../../src/Domain/Session.ts"
import { VOICES } from "../../src/Domain/Voices.ts"

export type Json = Record<string, unknown>
type Path = ReadonlyArray<string | number>

// ---------------------------------------------------------------------------------------------
// JSON text

/** A token written verbatim into the JSON text: numbers JSON.stringify cannot write (1e999). */
export class Raw {
  constructor(readonly text: string) {}
}

/** JSON text of `value`, own `__proto__` keys (which object literals cannot make) and Raw tokens kept. */
export const toJson = (value: unknown): string => {
  if (value instanceof Raw) return value.text
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`
  if (typeof value === "object" && value !== null)
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(",")}}`
  return JSON.stringify(value) ?? "null"
}

/** `value` as the server reads it back (and with an ordinary prototype, so `toEqual` compares data). */
export const normalized = (value: unknown): unknown => JSON.parse(toJson(value))

/** `object` with `key` as an own property, even `__proto__` (assignment would set the prototype). */
export const withKey = (object: object, key: string, value: unknown): Json =>
  Object.fromEntries([...Object.entries(object).filter(([k]) => k !== key), [key, value]])

/** The own property `key` of `value` (never one inherited, such as `constructor` or `__proto__`). */
export const own = (value: unknown, key: string | number): unknown =>
  typeof value === "object" && value !== null && Object.hasOwn(value, String(key))
    ? (value as Json)[String(key)]
    : undefined

/** The value at `path` in `root`, through own properties only. */
export const valueAt = (root: unknown, path: Path): unknown => path.reduce<unknown>(own, root)

/** `root` with the value at `path` replaced (parents that are not containers become objects). */
export const setIn = (root: unknown, path: Path, value: unknown): unknown => {
  if (path.length === 0) return value
  const [head, ...rest] = path
  if (Array.isArray(root) && typeof head === "number") {
    const copy = [...root]
    copy[head] = setIn(root[head], rest, value)
    return copy
  }
  const object = typeof root === "object" && root !== null && !Array.isArray(root) ? root : {}
  return withKey(object, String(head), setIn(own(object, head), rest, value))
}

/** `object` without `key`. */
export const without = (object: object, key: string): Json =>
  Object.fromEntries(Object.entries(object).filter(([k]) => k !== key))

// ---------------------------------------------------------------------------------------------
// Strings

/** Text PostgreSQL can store: no NUL, no unpaired surrogate (those are their own 400). */
const storable = (s: string) => unstorable(s) === undefined

/** Any storable text, up to `maxLength` UTF-16 units or so (a grapheme may take several). */
export const anyText = (minLength: number, maxLength: number) =>
  fc.string({ unit: "grapheme", minLength, maxLength }).filter(storable)

const SOLID = fc.constantFrom(..."aZ09-_.,é中ß!~")

/** Text of exactly `n` UTF-16 units with no blank at either end (so trimming keeps it whole). */
export const ofLength = (n: number): fc.Arbitrary<string> =>
  n <= 2
    ? fc.string({ unit: SOLID, minLength: n, maxLength: n })
    : anyText(0, Math.min(12, n - 2)).map((core) => {
        const middle = core.length <= n - 2 ? core : ""
        return `a${middle}${"z".repeat(n - 2 - middle.length)}z`
      })

/** A length in [min, max], the bounds themselves as likely as everything between. */
export const size = (min: number, max: number) =>
  fc.oneof(fc.constant(min), fc.constant(max), fc.integer({ min, max }))

/** Valid text for a `min`–`max` bound. */
export const text = (min: number, max: number) => size(min, max).chain(ofLength)

const BLANK = fc.constantFrom(" ", "\t", "\n", "\u00a0", "\u3000", "\ufeff")

/** `inner` with blanks around it, which the server trims before checking bounds. */
export const padded = (inner: fc.Arbitrary<string>) =>
  fc
    .tuple(fc.string({ unit: BLANK, maxLength: 3 }), inner, fc.string({ unit: BLANK, maxLength: 3 }))
    .map(([a, t, b]) => `${a}${t}${b}`)

const IDENT_REST = fc.constantFrom(..."abcxyzABCXYZ0189_")

/** A question or output_schema key: a letter, then letters, digits, underscores; 1–64 long. */
export const identifier = size(1, 64).chain((n) =>
  fc
    .tuple(
      fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
      fc.string({ unit: IDENT_REST, minLength: n - 1, maxLength: n - 1 }),
    )
    .map(([first, rest]) => first + rest),
)

// ---------------------------------------------------------------------------------------------
// Valid agents (SPEC §5)

const finite = fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x))

const QUESTION_TYPES = ["text", "number", "boolean", "date", "enum"] as const

const question = fc
  .record({
    ask: text(1, 2000),
    type: fc.constantFrom(...QUESTION_TYPES),
    // a few options mostly; sometimes the 64 allowed, one of them maybe the 2000 characters allowed
    options: fc.oneof(
      { weight: 6, arbitrary: fc.array(text(1, 24), { minLength: 1, maxLength: 4 }) },
      {
        weight: 1,
        arbitrary: fc.array(
          fc.oneof({ weight: 63, arbitrary: text(1, 24) }, { weight: 1, arbitrary: ofLength(2000) }),
          {
            minLength: 64,
            maxLength: 64,
          },
        ),
      },
    ),
    range: fc.tuple(finite, finite).map(([a, b]) => (a <= b ? [a, b] : [b, a])),
    with: fc.record({ options: fc.boolean(), min: fc.boolean(), max: fc.boolean() }),
  })
  .map(({ ask, type, options, range, with: w }) => ({
    ask,
    type,
    ...(w.options || type === "enum" ? { options } : {}),
    ...(w.min ? { min: range[0] } : {}),
    ...(w.max ? { max: range[1] } : {}),
  }))

const questions = size(0, 64).chain((n) =>
  fc
    .tuple(
      fc.uniqueArray(identifier, { minLength: n, maxLength: n }),
      fc.array(question, { minLength: n, maxLength: n }),
    )
    .map(([keys, qs]) => qs.map((q, i) => ({ key: keys[i], ...q }))),
)

const int = (min: number, max: number) => size(min, max)

export const behaviors = fc.record(
  {
    greeting: text(0, 2000),
    tone: fc.constantFrom("professional", "friendly", "neutral", "empathetic"),
    max_duration_seconds: int(60, 1800),
    allow_interruptions: fc.boolean(),
    end_conversation_after_questions: fc.boolean(),
    speaking_pace: fc.constantFrom("slow", "normal", "fast"),
    response_length: fc.constantFrom("brief", "moderate", "detailed"),
    escalation_phrase: text(1, 2000),
    follow_up_enabled: fc.boolean(),
    silence_timeout_seconds: int(5, 60),
    closing_message: text(1, 4000),
    require_all_questions: fc.boolean(),
    enforce_max_duration: fc.boolean(),
  },
  { requiredKeys: [] },
)

const OPTION_CHAR = fc.constantFrom(..."ab19+-_")
const hint = fc.oneof(
  fc.constantFrom("text", "number", "boolean", "date", `enum:${"o".repeat(195)}`),
  fc
    .array(fc.string({ unit: OPTION_CHAR, minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 8 })
    .map((options) => `enum:${options.join(",")}`),
)

const entries = <V>(key: fc.Arbitrary<string>, value: fc.Arbitrary<V>, min: number, max: number) =>
  size(min, max).chain((n) =>
    fc
      .uniqueArray(fc.tuple(key, value), { minLength: n, maxLength: n, selector: ([k]) => k })
      .map((pairs) => Object.fromEntries(pairs)),
  )

/** A strict schema whose serialized form is exactly `n` characters. */
export const strictOfLength = (n: number) => {
  const shell = { type: "object", properties: { a: { type: "string" } } }
  const overhead = JSON.stringify({ ...shell, description: "" }).length
  return { ...shell, description: "d".repeat(n - overhead) }
}

const STRICT_SCHEMAS = [
  { type: "object", properties: { a: { type: "string" } } },
  {
    type: "object",
    title: "Lead",
    required: ["size"],
    propertyOrdering: ["size", "tags"],
    properties: {
      size: { type: "integer", format: "int32", minimum: 1, maximum: 10_000 },
      tags: { type: "array", items: { type: "string", enum: ["a", "b"] }, minItems: 0, maxItems: 5 },
      either: { anyOf: [{ type: "string" }, { type: "number", nullable: true }] },
    },
  },
  strictOfLength(48_000),
]

export const LANGUAGE_CODES = ["en", "en-US", "pt-BR", "cmn-Hans-CN", "fr-CA", "de"] as const

export const voice = fc.record(
  { name: fc.constantFrom(...VOICES), language_code: fc.constantFrom(...LANGUAGE_CODES) },
  { requiredKeys: [] },
)

/** Metadata keys are free-form; `__proto__` is left out (refused in every body, see property.test.ts). */
const metadataKey = anyText(0, 20).filter((k) => k !== "__proto__")

/** A valid create body, every field at or within its bounds; name and instructions padded with blanks. */
export const validAgent = fc.record(
  {
    name: padded(text(1, 200)),
    instructions: padded(text(1, 16_000)),
    language: text(2, 32),
    purpose: fc.oneof(fc.constant(null), text(0, 200)),
    questions,
    behaviors,
    output_schema: entries(identifier, hint, 0, 64),
    output_schema_strict: fc.constantFrom(null, ...STRICT_SCHEMAS),
    extraction_model: fc.oneof(fc.constant(null), text(1, 128)),
    voice: fc.oneof(fc.constant(null), voice),
    metadata: entries(
      metadataKey,
      fc.oneof(anyText(0, 40), fc.constant(" untrimmed "), ofLength(500)),
      0,
      32,
    ),
  },
  { requiredKeys: ["name", "instructions"] },
)
export type ValidAgent = typeof validAgent extends fc.Arbitrary<infer A> ? A : never

/** What GET returns for a created agent, its defaults filled in and its names trimmed. */
export const expectedAgent = (input: ValidAgent) =>
  normalized({
    name: input.name.trim(),
    instructions: input.instructions.trim(),
    language: input.language ?? "en-US",
    purpose: input.purpose ?? null,
    questions: input.questions ?? [],
    behaviors: input.behaviors ?? {},
    output_schema: input.output_schema ?? {},
    output_schema_strict: input.output_schema_strict ?? null,
    extraction_model: input.extraction_model ?? null,
    voice: input.voice ?? {},
    metadata: input.metadata ?? {},
  }) as Json

/** A valid PATCH: some create fields, maybe is_active (never empty). */
export const validPatch = fc
  .tuple(validAgent, fc.option(fc.boolean(), { nil: undefined }))
  .chain(([agent, active]) =>
    fc.subarray(Object.keys(agent), { minLength: 1 }).map((keys) => ({
      ...Object.fromEntries(keys.map((k) => [k, agent[k as keyof ValidAgent]])),
      ...(active === undefined ? {} : { is_active: active }),
    })),
  )

// ---------------------------------------------------------------------------------------------
// Valid sessions (SPEC §6)

const jsonKey = anyText(0, 12).filter((k) => k !== "__proto__")

/** JSON values PostgreSQL keeps as they are: storable strings, finite numbers, shallow nesting. */
const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    finite,
    fc.integer(),
    anyText(0, 30),
    fc.array(tie("value"), { maxLength: 4 }),
    entries(jsonKey, tie("value"), 0, 4),
  ),
})).value

/** A JSON object whose serialized form is exactly `n` characters. */
export const contextOfLength = (n: number) => ({ k: "x".repeat(n - 8) })

const context = fc.oneof(
  fc.constant(null),
  entries(jsonKey, jsonValue, 0, 6).filter((c) => JSON.stringify(c).length <= 16_000),
  fc.constant(contextOfLength(16_000)),
)

/** A valid start body without agent_id; the cap never exceeds the ttl. */
export const validStart = fc
  .record(
    {
      participant: fc.record(
        { identity: padded(text(1, 256)), name: padded(text(0, 256)) },
        { requiredKeys: ["identity"] },
      ),
      context,
      ttl_seconds: int(60, 3600),
      max_duration_seconds: int(60, 1800),
      voice,
    },
    { requiredKeys: ["participant"] },
  )
  .map((body) =>
    body.max_duration_seconds !== undefined && body.max_duration_seconds > (body.ttl_seconds ?? 600)
      ? without(body, "max_duration_seconds")
      : (body as Json),
  )

const entry = (textArb: fc.Arbitrary<string>) =>
  fc.record(
    {
      role: fc.constantFrom("agent", "user"),
      text: textArb,
      timestamp: fc.oneof(fc.constant(0), fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
    },
    { requiredKeys: ["role", "text"] },
  )

/** A valid complete body: 1–20 entries up to 32000 characters (not trimmed), or 5000 small ones. */
export const validComplete = fc.record(
  {
    transcript: fc.oneof(
      {
        weight: 4,
        arbitrary: fc.array(
          entry(
            fc.oneof({ weight: 9, arbitrary: anyText(1, 40) }, { weight: 1, arbitrary: text(1, 32_000) }),
          ),
          { minLength: 1, maxLength: 20 },
        ),
      },
      {
        weight: 1,
        arbitrary: fc.array(entry(fc.constantFrom("ok", " ", "yes")), { minLength: 5000, maxLength: 5000 }),
      },
    ),
    duration_seconds: int(0, 86_400),
  },
  { requiredKeys: ["transcript"] },
)

// ---------------------------------------------------------------------------------------------
// Invalid values, by rule

const WRONG_TYPES: ReadonlyArray<unknown> = [true, false, [], {}, ["a"], { a: 1 }]

/** Values no `min`–`max` text field accepts (null only when the field is not nullable). */
export const badText = (min: number, max: number, nullable = false) =>
  fc.oneof(
    fc.constantFrom(...WRONG_TYPES, 0, -1, 1.5, new Raw("1e999"), ...(nullable ? [] : [null])),
    fc.integer({ min: max + 1, max: max + 64 }).chain(ofLength),
    ...(min >= 1 ? [fc.constantFrom("", " ", "\t\n", "\u00a0\u3000")] : []),
    ...(min >= 2 ? [ofLength(min - 1), ofLength(min - 1).map((s) => ` ${s} `)] : []),
    fc
      .tuple(ofLength(Math.max(min, 1)), fc.constantFrom("\u0000", "\ud800", "\udfff", "x\udc00y"))
      .map(([s, bad]) => s + bad),
  )

/** Values no `min`–`max` integer field accepts: out of range, fractional, huge, strings, NaN-likes. */
export const badInt = (min: number, max: number) =>
  fc.oneof(
    fc.constantFrom(min - 1, max + 1, -1_000_000, 2 ** 53 + 2, 1e300, -1e300, Number.MAX_VALUE),
    fc.integer({ min, max: max - 1 }).map((x) => x + 0.5),
    fc.integer({ min: max + 1, max: Number.MAX_SAFE_INTEGER }),
    fc.constantFrom(
      new Raw("1e999"),
      new Raw("-1e999"),
      new Raw("1E400"),
      new Raw("123456789012345678901234567890"),
    ),
    fc.constantFrom(String(min), String(max), "NaN", "Infinity", "-Infinity", "1e3", "0x10", "", " 60 "),
    fc.constantFrom(...WRONG_TYPES, null),
  )

export const badBool = fc.constantFrom("true", "false", 1, 0, null, [], {}, "yes", new Raw("1e999"))

export const badOneOf = (values: ReadonlyArray<string>) =>
  fc.oneof(
    fc.constantFrom(...values.map((v) => v.toUpperCase()), ...values.map((v) => ` ${v}`), "", "null"),
    anyText(0, 20).filter((s) => !values.includes(s)),
    fc.constantFrom(1, null, true, [], {}, [values[0]]),
  )

/** A field name the schema does not know, including the prototype-pollution keys. */
export const extraKey = (known: ReadonlyArray<string>) =>
  fc
    .oneof(
      fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "id", "org_id"),
      anyText(0, 16),
    )
    .filter((k) => !known.includes(k))

const anyJson = fc.oneof(jsonValue, fc.constant({ polluted: "yes" }), fc.constant(new Raw("1e999")))

// ---------------------------------------------------------------------------------------------
// Mutations: one invalid change to a valid body

export type Mutation =
  | { readonly path: Path; readonly value: unknown }
  | { readonly path: Path; readonly remove: true }

/** `body` with `mutation` applied. */
export const mutate = (body: unknown, mutation: Mutation): unknown => {
  if (!("remove" in mutation)) return setIn(body, mutation.path, mutation.value)
  const parent = mutation.path.slice(0, -1)
  const key = String(mutation.path[mutation.path.length - 1])
  return setIn(body, parent, without((valueAt(body, parent) ?? {}) as Json, key))
}

const at = (path: Path, value: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> =>
  value.map((v) => ({ path, value: v }))
const extraAt = (path: Path, known: ReadonlyArray<string>): fc.Arbitrary<Mutation> =>
  fc.tuple(extraKey(known), anyJson).map(([k, v]) => ({ path: [...path, k], value: v }))

const LANGUAGE_TAG = /^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8}){0,3}$/
const badLanguageCode = fc.oneof(
  fc.constantFrom("e", "english_us", "en-", "-US", "en US", "", "en-US-", "toolongtag", 42, null),
  anyText(0, 16).filter((s) => !LANGUAGE_TAG.test(s)),
)

const voiceMutations = (path: Path, nullable: boolean) => [
  at(path, fc.constantFrom("Puck", 1, [], true, ...(nullable ? [] : [null]))),
  at([...path, "name"], badOneOf(VOICES)),
  at([...path, "language_code"], badLanguageCode),
  extraAt(path, ["name", "language_code"]),
]

const AGENT_FIELDS = Object.keys(CreateAgent.fields)

/** A valid create body with a nested value in each container, so nested fields can be broken. */
export const AGENT_BASE: Json = {
  name: "Agent",
  instructions: "Be helpful.",
  questions: [{ key: "q", ask: "Why?", type: "text" }],
  behaviors: { tone: "friendly" },
  output_schema: { a: "text" },
  voice: { name: "Puck" },
  metadata: { k: "v" },
}

const questionOf = (fields: Json) => [{ key: "q", ask: "Why?", type: "text", ...fields }]

const BEHAVIOR_RULES: ReadonlyArray<[string, fc.Arbitrary<unknown>]> = [
  ["greeting", badText(0, 2000)],
  ["tone", badOneOf(["professional", "friendly", "neutral", "empathetic"])],
  ["max_duration_seconds", badInt(60, 1800)],
  ["allow_interruptions", badBool],
  ["end_conversation_after_questions", badBool],
  ["speaking_pace", badOneOf(["slow", "normal", "fast"])],
  ["response_length", badOneOf(["brief", "moderate", "detailed"])],
  ["escalation_phrase", badText(1, 2000)],
  ["follow_up_enabled", badBool],
  ["silence_timeout_seconds", badInt(5, 60)],
  ["closing_message", badText(1, 4000)],
  ["require_all_questions", badBool],
  ["enforce_max_duration", badBool],
]

/**
 * Keys an output_schema must refuse. Not `__proto__`: it is refused for every body, with its own
 * message; the prototype-pollution property covers it.
 */
const badIdentifier = fc.oneof(
  fc.constantFrom("", "1a", "a-b", "a b", "_a", "ü", `k${"x".repeat(64)}`, " a"),
  anyText(1, 10).filter((s) => s !== "__proto__" && !/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(s)),
)

/** Every rule of SPEC §5 broken once (the bodies are invalid whatever else they contain). */
const agentFieldMutations = (create: boolean): Array<fc.Arbitrary<Mutation>> => [
  at(["name"], badText(1, 200)),
  at(["instructions"], badText(1, 16_000)),
  at(["language"], badText(2, 32)),
  at(["purpose"], badText(0, 200, true)),
  at(["extraction_model"], badText(1, 128, true)),
  ...BEHAVIOR_RULES.map(([field, bad]) => at(["behaviors", field], bad)),
  at(["behaviors"], fc.constantFrom(null, "friendly", 1, [], [{}])),
  extraAt(
    ["behaviors"],
    BEHAVIOR_RULES.map(([f]) => f),
  ),
  ...voiceMutations(["voice"], true),
  at(["questions"], fc.constantFrom(null, "q", 1, { key: "q" })),
  at(
    ["questions"],
    fc
      .integer({ min: 65, max: 80 })
      .map((n) => Array.from({ length: n }, (_, i) => ({ key: `q${i}`, ask: "?", type: "text" }))),
  ),
  at(["questions", 0, "key"], badIdentifier),
  at(["questions", 0, "ask"], badText(1, 2000)),
  at(["questions", 0, "type"], badOneOf(QUESTION_TYPES)),
  at(
    ["questions", 0, "options"],
    fc.constantFrom(
      "a",
      1,
      [1],
      [""],
      [" "],
      null,
      Array.from({ length: 65 }, (_, i) => `o${i}`),
    ),
  ),
  at(["questions", 0, "min"], fc.constantFrom("1", null, new Raw("1e999"), new Raw("-1e999"), [], true)),
  at(["questions"], fc.constant(questionOf({ type: "enum" }))),
  at(["questions"], fc.constant(questionOf({ type: "enum", options: [] }))),
  at(
    ["questions"],
    fc
      .tuple(finite, finite)
      .filter(([a, b]) => a !== b)
      .map(([a, b]) => questionOf({ type: "number", min: Math.max(a, b), max: Math.min(a, b) })),
  ),
  at(["questions"], fc.constant([...questionOf({}), ...questionOf({ ask: "Again?" })])),
  extraAt(["questions", 0], ["key", "ask", "type", "options", "min", "max"]),
  at(["output_schema"], fc.constantFrom(null, "text", 1, ["text"])),
  at(
    ["output_schema"],
    fc
      .integer({ min: 65, max: 70 })
      .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "text"]))),
  ),
  fc.tuple(badIdentifier, fc.constant("text")).map(([k, v]) => ({ path: ["output_schema", k], value: v })),
  at(
    ["output_schema", "a"],
    fc.oneof(
      fc.constantFrom("", "enum:", "enum: , ", "string", "Text", 1, null, `enum:${"o".repeat(196)}`),
      anyText(1, 10).filter((s) => !/^(text|number|boolean|date|enum:.*)$/s.test(s.trim())),
    ),
  ),
  at(
    ["output_schema_strict"],
    fc.constantFrom(
      {},
      [],
      "{}",
      1,
      { type: "array", items: { type: "string" } },
      { type: "object", properties: { a: { type: "string" } }, additionalProperties: false },
      { type: "object", $ref: "#/x" },
      { type: "object", properties: { a: { oneOf: [{ type: "string" }] } } },
      { type: "object", properties: { a: { type: "null" } } },
      { type: "object", properties: { a: { type: "integer", enum: [1] } } },
      { type: "object", properties: { a: { type: 5 } } },
      { type: "object", properties: { a: { type: "string", pattern: "^a" } } },
      { type: "object", properties: { a: { type: "number", minimum: new Raw("1e999") } } },
      strictOfLength(48_001),
    ),
  ),
  at(["metadata"], fc.constantFrom(null, "v", 1, ["a"])),
  at(
    ["metadata"],
    fc
      .integer({ min: 33, max: 40 })
      .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))),
  ),
  at(
    ["metadata", "k"],
    fc.oneof(
      fc.constantFrom(1, null, true, [], { a: "b" }),
      fc.integer({ min: 501, max: 520 }).chain(ofLength),
      fc.constant("v\u0000"),
    ),
  ),
  fc.constantFrom("k\u0000", "\ud800").map((k) => ({ path: ["metadata", k], value: "v" })),
  extraAt([], [...AGENT_FIELDS, ...(create ? [] : ["is_active"])]),
  ...(create
    ? [
        at(["is_active"], fc.boolean()),
        fc.constantFrom<Mutation>({ path: ["name"], remove: true }, { path: ["instructions"], remove: true }),
      ]
    : [at(["is_active"], badBool)]),
]

/** A request body that is valid JSON but not an object. */
const notAnObject = (base: Json) =>
  fc.constantFrom<unknown>([base], "body", 42, null, true, [], new Raw("1e999"))

export const invalidAgentCreate = fc.oneof(
  {
    weight: 9,
    arbitrary: fc
      .array(fc.oneof(...agentFieldMutations(true)), { minLength: 1, maxLength: 2 })
      .map((ms) => ms.reduce<unknown>(mutate, AGENT_BASE)),
  },
  { weight: 1, arbitrary: notAnObject(AGENT_BASE) },
)

/** Invalid PATCH bodies: the broken fields alone (a valid PATCH needs none of the others). */
export const invalidAgentPatch = fc.oneof(
  {
    weight: 9,
    arbitrary: fc.array(fc.oneof(...agentFieldMutations(false)), { minLength: 1, maxLength: 2 }).map((ms) => {
      const full = ms.reduce<unknown>(mutate, AGENT_BASE) as Json
      const roots = new Set(ms.map((m) => String(m.path[0])))
      return Object.fromEntries(Object.entries(full).filter(([k]) => roots.has(k)))
    }),
  },
  { weight: 1, arbitrary: fc.oneof(notAnObject(AGENT_BASE), fc.constant({})) },
)

const START_FIELDS = Object.keys(StartSession.fields)

const badUuid = fc.oneof(
  fc.uuid().map((u) => `{${u}}`),
  fc.uuid().map((u) => u.slice(1)),
  fc.uuid().map((u) => `${u} `),
  fc.uuid().map((u) => `urn:uuid:${u}`),
  fc.uuid().map((u) => u.replaceAll("-", "")),
  fc.constantFrom("", "aaaaaaaa-bbbb-cccc-dddd", "../agents", 42, null, true, [], {}),
)

const deep = (levels: number): unknown => Array.from({ length: levels }).reduce<unknown>((v) => ({ a: v }), 1)

/** Invalid start bodies for an agent `agentId` the caller owns. */
export const invalidStart = (agentId: string) => {
  const base: Json = {
    agent_id: agentId,
    participant: { identity: "user_1", name: "Alice" },
    voice: { name: "Kore" },
  }
  const mutations: Array<fc.Arbitrary<Mutation>> = [
    at(["agent_id"], badUuid),
    at(["participant"], fc.constantFrom("alice", 1, null, [], [{ identity: "u" }])),
    at(["participant", "identity"], badText(1, 256)),
    at(["participant", "name"], badText(0, 256)),
    extraAt(["participant"], ["identity", "name"]),
    at(
      ["context"],
      fc.constantFrom(
        [1, 2],
        "vip",
        1,
        true,
        contextOfLength(16_001),
        { a: "\u0000" },
        { "\u0000": 1 },
        { n: new Raw("1e999") },
        deep(33),
      ),
    ),
    at(["ttl_seconds"], badInt(60, 3600)),
    at(["max_duration_seconds"], badInt(60, 1800)),
    // both in range, the cap above the ttl: 400 voice_session_ttl_too_short
    fc.integer({ min: 60, max: 1799 }).chain((ttl) =>
      fc.integer({ min: ttl + 1, max: 1800 }).map((max) => ({
        path: [] as Path,
        value: { ...base, ttl_seconds: ttl, max_duration_seconds: max },
      })),
    ),
    ...voiceMutations(["voice"], false),
    extraAt([], START_FIELDS),
    fc.constantFrom<Mutation>(
      { path: ["agent_id"], remove: true },
      { path: ["participant"], remove: true },
      { path: ["participant", "identity"], remove: true },
    ),
  ]
  return fc.oneof(
    {
      weight: 9,
      arbitrary: fc
        .array(fc.oneof(...mutations), { minLength: 1, maxLength: 2 })
        .map((ms) => ms.reduce<unknown>(mutate, base)),
    },
    { weight: 1, arbitrary: notAnObject(base) },
  )
}

const COMPLETE_BASE: Json = {
  transcript: [{ role: "user", text: "hello", timestamp: 1 }],
  duration_seconds: 30,
}

export const invalidComplete = fc.oneof(
  {
    weight: 9,
    arbitrary: fc
      .array(
        fc.oneof(
          at(
            ["transcript"],
            fc.constantFrom(
              [],
              "hello",
              null,
              1,
              {},
              Array.from({ length: 5001 }, () => ({ role: "user", text: "x" })),
            ),
          ),
          at(["transcript", 0], fc.constantFrom("hello", 1, null, [])),
          at(["transcript", 0, "role"], badOneOf(["agent", "user"])),
          at(
            ["transcript", 0, "text"],
            fc.oneof(
              fc.constantFrom("", 1, null, [], "a\u0000", "\ud800"),
              fc.integer({ min: 32_001, max: 32_010 }).chain(ofLength),
            ),
          ),
          at(
            ["transcript", 0, "timestamp"],
            fc.oneof(
              fc.constantFrom(-1, 1.5, "1", null, true, new Raw("1e999"), -1e300),
              fc.integer({ max: -1 }),
            ),
          ),
          extraAt(["transcript", 0], ["role", "text", "timestamp"]),
          at(["duration_seconds"], badInt(0, 86_400)),
          extraAt([], ["transcript", "duration_seconds"]),
          fc.constantFrom<Mutation>(
            { path: ["transcript"], remove: true },
            { path: ["transcript", 0, "text"], remove: true },
            { path: ["transcript", 0, "role"], remove: true },
          ),
        ),
        { minLength: 1, maxLength: 2 },
      )
      .map((ms) => ms.reduce<unknown>(mutate, COMPLETE_BASE)),
  },
  { weight: 1, arbitrary: notAnObject(COMPLETE_BASE) },
)

/** Invalid admin bodies: `{name}` for an organization (required) or an API key (optional). */
export const invalidAdmin = (nameRequired: boolean) => {
  const base: Json = { name: "Acme" }
  return fc
    .oneof(
      at(["name"], badText(1, 200)),
      extraAt([], ["name"]),
      ...(nameRequired ? [fc.constant<Mutation>({ path: [], value: {} })] : []),
      notAnObject(base).map((value): Mutation => ({ path: [], value })),
    )
    .map((m) => mutate(base, m))
}

// ---------------------------------------------------------------------------------------------
// Hostile transport: query strings, path ids, bytes, headers

/**
 * Query values, `%`-escapes broken and not. Whole query strings stop at 8000 characters: past ~16 KB
 * of request line and headers Bun answers 431 with an empty body (no envelope, no X-Request-Id)
 * before the app sees the request (reported).
 */
const queryValue = fc.oneof(
  fc.constantFrom(
    "",
    ..."%ZZ % %% %00 %C3%28 %FF %E2%82 true false TRUE 1 0 -1 +5 %205 1e3 1.5 0x10 NaN Infinity -0".split(
      " ",
    ),
    ..."100 101 120 121 1000000 1000001 99999999999999999999".split(" "),
    ..."active completed transcript 2026-11-01T12:00:00Z 2026-02-30T00:00:00Z 2026-11-01T12:00:00%2B99:00".split(
      " ",
    ),
  ),
  fc.uuid(),
  fc.integer({ min: -1000, max: 1_000_000 }).map(String),
  anyText(0, 20).map(encodeURIComponent),
  fc.string({ unit: fc.constantFrom(..."a1%=&+;,"), maxLength: 20 }),
  fc.integer({ min: 100, max: 8000 }).map((n) => "9".repeat(n)),
)

const queryKey = fc.oneof(
  fc.constantFrom(
    "",
    ..."limit offset wait_for_completion timeout_seconds %ZZ __proto__ limit[] constructor".split(" "),
    ..."agent_id status created_after created_before starting_after include status[]".split(" "),
  ),
  anyText(0, 10).map(encodeURIComponent),
)

/** A query string of 0–6 pairs (keys may repeat), sometimes with a bare key or stray separators. */
export const queryString = fc
  .array(fc.tuple(queryKey, fc.option(queryValue, { nil: undefined })), { maxLength: 6 })
  .chain((pairs) =>
    fc
      .constantFrom("&", "&&", ";")
      .map((sep) => `?${pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(sep)}`),
  )
  .filter((query) => query.length <= 8000)

/** Path segments that name no resource of the caller's: junk, broken escapes, traversal, unknown UUIDs. */
export const junkId = fc.oneof(
  fc.constantFrom(
    ..."%ZZ % %2F a%2Fb %00 %C3%28 %FF .. %2e%2e %252F null undefined 0 -1 __proto__ constructor".split(" "),
    "x".repeat(5000),
  ),
  fc.uuid().map((u) => u.slice(0, -1)),
  fc.uuid().map((u) => `${u}0`),
  fc.uuid().map((u) => u.replaceAll("-", "")),
  fc.uuid().map((u) => `%20${u}`),
  fc.uuid().map((u) => encodeURIComponent(`{${u}}`)),
  anyText(1, 40).map(encodeURIComponent),
  fc.string({ unit: fc.constantFrom(..."abcdef0123456789-%._~"), minLength: 1, maxLength: 40 }),
)

export const unknownUuid = fc.uuid()

/** Byte sequences that are not UTF-8: invalid, overlong, truncated, surrogate and out-of-range forms. */
export const badUtf8 = fc.constantFrom(
  [0xff],
  [0xfe],
  [0xc3, 0x28],
  [0x80],
  [0xc0, 0xaf],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
)

/** `text` as UTF-8 with invalid sequences spliced in at some places (byte offsets within the text). */
export const withBadBytes = (text: string) =>
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 10_000 }), badUtf8), { minLength: 1, maxLength: 3 })
    .map((cuts) => {
      const bytes = [...new TextEncoder().encode(text)]
      const sorted = [...cuts]
        .map(([at, seq]) => [at % (bytes.length + 1), seq] as const)
        .sort((a, b) => b[0] - a[0])
      for (const [offset, seq] of sorted) bytes.splice(offset, 0, ...seq)
      return new Uint8Array(bytes)
    })

/** Printable ASCII header values (what fetch can send). */
export const headerText = (maxLength: number) =>
  fc.string({ unit: "grapheme-ascii", maxLength }).map((s) => s.trim())

/** An Authorization header that is no valid credential (undefined: none at all). */
export const badAuthorization = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Token abc",
    "bearer",
    "Bearer pk_live_",
    "Bearer a b",
  ),
  fc
    .string({ unit: fc.constantFrom(..."abcXYZ0189"), minLength: 32, maxLength: 40 })
    .map((k) => `Bearer pk_live_${k}`),
  headerText(60).map((t) => `Bearer ${t}`),
  headerText(60),
)
