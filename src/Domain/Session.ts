import { Schema } from "effect"
import { Voice } from "./Agent.ts"
import {
  BoolParam,
  IntBetween,
  IntParam,
  JsonObject,
  JsonRecord,
  Num,
  object,
  optional,
  Str,
  strict,
  Text,
} from "./Fields.ts"
import { AgentId, SessionId } from "./Ids.ts"

export const SessionStatus = Schema.Literal("active", "completing", "completed", "failed", "expired")
export type SessionStatus = typeof SessionStatus.Type
export const TERMINAL: ReadonlySet<SessionStatus> = new Set(["completed", "failed", "expired"])

export const Participant = Schema.Struct({
  identity: Text(1, 256),
  name: optional(Text(0, 256)),
}).annotations({ ...strict, ...object })
export type Participant = typeof Participant.Type

export const StartSession = Schema.Struct({
  agent_id: AgentId,
  participant: Participant,
  context: optional(Schema.NullOr(JsonObject(16_000))),
  ttl_seconds: optional(IntBetween(60, 3600)),
  max_duration_seconds: optional(IntBetween(60, 1800)),
  voice: optional(Voice),
}).annotations({ ...strict, ...object, identifier: "StartVoiceSession" })
export type StartSession = typeof StartSession.Type

export const SessionStarted = Schema.Struct({
  session_id: SessionId,
  agent_id: AgentId,
  connection: Schema.Struct({
    livekit: Schema.Struct({ url: Schema.String, token: Schema.String }),
    gemini_live: Schema.Struct({ url: Schema.String, token: Schema.String }),
  }),
  system_instruction: Schema.String,
  expires_at: Schema.Int,
  max_duration_seconds: Schema.NullOr(Schema.Int),
}).annotations({ identifier: "VoiceSessionStarted" })

export const TranscriptEntry = Schema.Struct({
  role: Schema.Literal("agent", "user"),
  text: Str.pipe(
    Schema.minLength(1, { message: () => "must not be empty" }),
    Schema.maxLength(32_000, { message: () => "must be at most 32000 characters" }),
  ),
  timestamp: optional(
    Num.pipe(
      Schema.int({ message: () => "must be an integer ≥ 0" }),
      Schema.nonNegative({ message: () => "must be an integer ≥ 0" }),
    ),
  ),
}).annotations({ ...strict, ...object })
export type TranscriptEntry = typeof TranscriptEntry.Type

export const CompleteSession = Schema.Struct({
  transcript: Schema.Array(TranscriptEntry)
    .annotations({ message: () => "must be an array of transcript entries" })
    .pipe(
      Schema.minItems(1, { message: () => "must have at least 1 entry" }),
      Schema.maxItems(5000, { message: () => "must have at most 5000 entries" }),
    ),
  duration_seconds: optional(IntBetween(0, 86_400)),
}).annotations({ ...strict, ...object, identifier: "CompleteVoiceSession" })
export type CompleteSession = typeof CompleteSession.Type

export const ErrorLogEntry = Schema.Struct({ at: Schema.Int, code: Schema.String, message: Schema.String })
export type ErrorLogEntry = typeof ErrorLogEntry.Type

export const Session = Schema.Struct({
  session_id: SessionId,
  agent_id: AgentId,
  status: SessionStatus,
  participant: Schema.Struct({ identity: Schema.String, name: Schema.optional(Schema.String) }),
  context: Schema.NullOr(JsonRecord),
  transcript: Schema.NullOr(Schema.Array(TranscriptEntry)),
  results: Schema.NullOr(JsonRecord),
  extraction_warnings: Schema.Array(Schema.String),
  duration_seconds: Schema.NullOr(Schema.Int),
  max_duration_seconds: Schema.NullOr(Schema.Int),
  error_log: Schema.Array(ErrorLogEntry),
  metadata: JsonRecord,
  expires_at: Schema.Int,
  created_at: Schema.Int,
  updated_at: Schema.Int,
  completed_at: Schema.NullOr(Schema.Int),
}).annotations({ identifier: "VoiceSession" })
export type Session = typeof Session.Type

/** The complete response: the session envelope plus top-level `results` / `extraction_warnings`. */
export const CompletedEnvelope = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("voice_session"),
  status: SessionStatus,
  created_at: Schema.Int,
  results: Schema.NullOr(JsonRecord),
  extraction_warnings: Schema.optional(Schema.Array(Schema.String)),
  data: Session,
})

export const WaitParams = Schema.Struct({
  wait_for_completion: Schema.optional(BoolParam),
  timeout_seconds: Schema.optional(IntParam(1, 120)),
})

export const WebhookReceipt = Schema.Struct({ received: Schema.Literal(true), handled: Schema.Boolean })
