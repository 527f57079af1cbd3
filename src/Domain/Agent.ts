import { Schema } from "effect"
import {
  Bool,
  Identifier,
  IdentifierKeyed,
  IntBetween,
  JsonObject,
  JsonRecord,
  maxKeys,
  Num,
  nonEmptyPatch,
  OneOf,
  object,
  optional,
  Str,
  strict,
  Text,
  unstorable,
} from "./Fields.ts"
import { AgentId } from "./Ids.ts"
import { strictSchemaProblem } from "./JsonSchema.ts"
import { VOICES } from "./Voices.ts"

export const QuestionType = OneOf("text", "number", "boolean", "date", "enum")

const Finite = Num.pipe(Schema.finite({ message: () => "must be a finite number" }))

export const Question = Schema.Struct({
  key: Identifier,
  ask: Text(1, 2000),
  type: QuestionType,
  options: optional(
    Schema.Array(Text(1, 2000))
      .annotations({ message: () => "must be an array of strings" })
      .pipe(Schema.maxItems(64, { message: () => "must have at most 64 options" })),
  ),
  min: optional(Finite),
  max: optional(Finite),
})
  .annotations({ ...strict, ...object })
  .pipe(
    // SPEC §5 ties only the presence of options to the type; options/min/max are accepted on any type
    Schema.filter((q) => {
      if (q.type === "enum" && (q.options === undefined || q.options.length === 0))
        return { path: ["options"], message: "is required and must not be empty for an enum question" }
      if (q.min !== undefined && q.max !== undefined && q.min > q.max)
        return { path: ["min"], message: "must be less than or equal to max" }
      return undefined
    }),
  )
export type Question = typeof Question.Type

export const Questions = Schema.Array(Question)
  .annotations({ message: () => "must be an array of questions" })
  .pipe(
    Schema.maxItems(64, { message: () => "must have at most 64 questions" }),
    Schema.filter((questions) => {
      const seen = new Set<string>()
      for (const [i, q] of questions.entries()) {
        if (seen.has(q.key)) return { path: [i, "key"], message: `duplicate question key "${q.key}"` }
        seen.add(q.key)
      }
      return undefined
    }),
  )

export const Behaviors = Schema.Struct({
  greeting: optional(Text(0, 2000)),
  tone: optional(OneOf("professional", "friendly", "neutral", "empathetic")),
  max_duration_seconds: optional(IntBetween(60, 1800)),
  allow_interruptions: optional(Bool),
  end_conversation_after_questions: optional(Bool),
  speaking_pace: optional(OneOf("slow", "normal", "fast")),
  response_length: optional(OneOf("brief", "moderate", "detailed")),
  escalation_phrase: optional(Text(1, 2000)),
  follow_up_enabled: optional(Bool),
  silence_timeout_seconds: optional(IntBetween(5, 60)),
  closing_message: optional(Text(1, 4000)),
  require_all_questions: optional(Bool),
  /** (extension) See Sessions/CallCap.ts. */
  enforce_max_duration: optional(
    Bool.annotations({
      description:
        "(extension) Whether the server ends a call at its max_duration_seconds (default true): the Gemini " +
        "Live token stops working and the LiveKit room is deleted once the cap and a grace period have " +
        "passed since the session started. false leaves ending the call to the client.",
    }),
  ),
}).annotations({ ...strict, ...object })
export type Behaviors = typeof Behaviors.Type

const HINT = /^(text|number|boolean|date|enum:.*)$/s

/** `text`, `number`, `boolean`, `date` or `enum:a,b,...` with at least one non-empty option. */
export const TypeHint = Text(1, 200).pipe(
  Schema.filter((hint) => {
    if (!HINT.test(hint)) return 'must be "text", "number", "boolean", "date" or "enum:a,b,..."'
    if (hint.startsWith("enum:") && enumOptions(hint).length === 0) return "enum needs at least one option"
    return undefined
  }),
)

export const enumOptions = (hint: string): ReadonlyArray<string> =>
  hint
    .slice("enum:".length)
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "")

export const OutputSchema = IdentifierKeyed(TypeHint).pipe(maxKeys(64))

export const OutputSchemaStrict = JsonObject(48_000).pipe(Schema.filter((s) => strictSchemaProblem(s)))

/** 30 names are too many to list in every error: point at the catalog instead. */
export const VoiceName = OneOf(...VOICES).annotations({
  message: () => ({
    message: 'must be one of the voices listed by GET /api/v1/voice/voices (e.g. "Puck")',
    override: true,
  }),
})

const LANGUAGE_TAG = /^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8}){0,3}$/

/** `text` as a canonical BCP 47 tag ("en-us" → "en-US"), or undefined when it is not one ("English"). */
export const languageTag = (text: string): string | undefined => {
  if (!LANGUAGE_TAG.test(text)) return undefined
  try {
    return Intl.getCanonicalLocales(text)[0]
  } catch {
    return undefined
  }
}

export const Voice = Schema.Struct({
  name: optional(VoiceName),
  language_code: optional(
    Str.pipe(
      Schema.pattern(LANGUAGE_TAG, {
        message: () => 'must be a BCP 47 language tag such as "en-US"',
      }),
    ),
  ),
}).annotations({ ...strict, ...object })
export type Voice = typeof Voice.Type

export const Metadata = Schema.Record({
  key: Schema.String,
  value: Str.pipe(Schema.maxLength(500, { message: () => "must be at most 500 characters" })),
})
  .annotations(object)
  .pipe(
    maxKeys(32),
    // checked here rather than by the key schema, which would report a bad key as "unexpected"
    Schema.filter((record) =>
      Object.keys(record).flatMap((key) => {
        const problem = unstorable(key)
        return problem === undefined ? [] : [{ path: [key], message: `key ${problem}` }]
      }),
    ),
  )

const configFields = {
  name: Text(1, 200),
  instructions: Text(1, 16_000),
  language: optional(Text(2, 32)),
  purpose: optional(Schema.NullOr(Text(0, 200))),
  questions: optional(Questions),
  behaviors: optional(Behaviors),
  output_schema: optional(OutputSchema),
  output_schema_strict: optional(Schema.NullOr(OutputSchemaStrict)),
  extraction_model: optional(Schema.NullOr(Text(1, 128))),
  voice: optional(Schema.NullOr(Voice)),
  metadata: optional(Metadata),
}

export const CreateAgent = Schema.Struct(configFields).annotations({
  ...strict,
  ...object,
  identifier: "CreateVoiceAgent",
})
export type CreateAgent = typeof CreateAgent.Type

export const UpdateAgent = Schema.Struct({
  ...configFields,
  name: optional(configFields.name),
  instructions: optional(configFields.instructions),
  is_active: optional(Bool),
})
  .annotations({ ...strict, ...object })
  .pipe(nonEmptyPatch("UpdateVoiceAgent"))
export type UpdateAgent = typeof UpdateAgent.Type

/** The full stored agent, as GET returns it. */
export const Agent = Schema.Struct({
  agent_id: AgentId,
  name: Schema.String,
  instructions: Schema.String,
  language: Schema.String,
  purpose: Schema.NullOr(Schema.String),
  questions: Schema.Array(Question),
  behaviors: Behaviors,
  output_schema: Schema.Record({ key: Schema.String, value: Schema.String }),
  output_schema_strict: Schema.NullOr(JsonRecord),
  extraction_model: Schema.NullOr(Schema.String),
  /** `{}` when unset, as the Pi API returns it. */
  voice: Voice,
  metadata: Schema.Record({ key: Schema.String, value: Schema.String }),
  system_instruction: Schema.String,
  is_active: Schema.Boolean,
  created_at: Schema.Int,
  updated_at: Schema.Int,
}).annotations({ identifier: "VoiceAgent" })
export type Agent = typeof Agent.Type

export const AgentSummary = Agent.pick(
  "agent_id",
  "name",
  "language",
  "purpose",
  "is_active",
  "created_at",
  "updated_at",
).annotations({ identifier: "VoiceAgentSummary" })
export type AgentSummary = typeof AgentSummary.Type

export const AgentCreated = Agent.pick("agent_id", "name", "created_at")
export const AgentDeleted = Schema.Struct({ agent_id: AgentId, deleted: Schema.Literal(true) })
/** GET /agents/:id/preview: the system instruction compiled from the agent's current settings. */
export const AgentPreview = Schema.Struct({
  agent_id: AgentId,
  system_instruction: Schema.String,
}).annotations({
  identifier: "VoiceAgentPreview",
})
