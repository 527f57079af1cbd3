/** `GET /sessions`: its query parameters and its cursor-paginated list. */
import { ParseResult, Schema } from "effect"
import { PageOf } from "./Envelope.ts"
import { IntParam, OneOf, optional, preview, Str, strict } from "./Fields.ts"
import { AgentId, SessionId } from "./Ids.ts"
import { Session, SessionStatus } from "./Session.ts"

export const DEFAULT_LIST_LIMIT = 20

/** `2026-12-02T10:00:00Z`, `2026-12-02T10:00:00.250+01:00`: a date-time with its offset, at most ms. */
const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:\d{2})$/

const dateTimeProblem = (s: string) =>
  `must be an ISO 8601 date-time with a time zone, e.g. 2026-12-02T10:00:00Z; got ${preview(s)}`

/** The instant `s` names, or undefined when it is not a real date-time ("2026-02-30T…" is not). */
const parseDateTime = (s: string): Date | undefined => {
  const m = ISO_DATE_TIME.exec(s)
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  const ms = Number((m[7] ?? "0").padEnd(3, "0"))
  const local = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms))
  // Date.UTC rolls day 30 of February over into March: a field that changed was out of range
  const exact =
    local.getUTCFullYear() === year &&
    local.getUTCMonth() === month - 1 &&
    local.getUTCDate() === day &&
    local.getUTCHours() === hour &&
    local.getUTCMinutes() === minute
  if (!exact || second > 59) return undefined
  const zone = m[8]
  if (zone === "Z") return local
  const [zh, zm] = zone.slice(1).split(":").map(Number)
  if (zh > 23 || zm > 59) return undefined
  const offsetMs = (zone[0] === "-" ? -1 : 1) * (zh * 60 + zm) * 60_000
  return new Date(local.getTime() - offsetMs)
}

/** An ISO 8601 date-time query parameter, as a Date (the typed client sends `toISOString()`). */
export const DateTimeParam = Schema.transformOrFail(
  Str.annotations({ jsonSchema: { type: "string", format: "date-time" } }),
  Schema.DateFromSelf,
  {
    strict: true,
    decode: (s, _, ast) => {
      const date = parseDateTime(s)
      return date === undefined
        ? ParseResult.fail(new ParseResult.Type(ast, s, dateTimeProblem(s)))
        : ParseResult.succeed(date)
    },
    encode: (date) => ParseResult.succeed(date.toISOString()),
  },
)

/**
 * A repeatable parameter (`?status=a&status=b`): the server reads one value as a list of one. Each
 * value is one of `literals`; one message names them all.
 */
const Repeatable = <const L extends ReadonlyArray<string>>(...literals: L) =>
  Schema.Array(OneOf(...literals)).annotations({ message: () => "must be given once per value" })

/** Documented in OpenAPI: `jsonSchema` restates what a schema with its own such annotation documents. */
const described = <S extends Schema.Schema.Any>(schema: S, description: string, jsonSchema: object = {}) =>
  optional(schema.annotations({ description, jsonSchema: { ...jsonSchema, description } }))
const UUID = { type: "string", format: "uuid" }

export const ListSessionsParams = Schema.Struct({
  agent_id: described(AgentId, "Only sessions of this agent.", UUID),
  status: described(
    Repeatable(...SessionStatus.literals),
    "Only sessions in one of these statuses; repeat the parameter for several.",
  ),
  created_after: described(DateTimeParam, "Only sessions created at or after this instant (inclusive)."),
  created_before: described(DateTimeParam, "Only sessions created before this instant (exclusive)."),
  starting_after: described(
    SessionId,
    "The session_id of the last item of the previous page: this page starts after it.",
    UUID,
  ),
  limit: described(IntParam(1, 100), `Items per page, 1-100 (default ${DEFAULT_LIST_LIMIT}).`, {
    type: "integer",
    minimum: 1,
    maximum: 100,
  }),
  include: described(Repeatable("transcript"), "`transcript`: include each session's transcript."),
}).annotations(strict)
export type ListSessionsParams = typeof ListSessionsParams.Type

/** A session as `GET /sessions/:id` returns it; `transcript` only with `include=transcript`. */
export const SessionListItem = Schema.Struct({
  ...Session.fields,
  transcript: Schema.optional(Session.fields.transcript),
}).annotations({ identifier: "VoiceSessionListItem" })
export type SessionListItem = typeof SessionListItem.Type

/** A page of sessions, newest first. */
export const SessionList = PageOf(SessionListItem).annotations({ identifier: "VoiceSessionList" })
export type SessionList = typeof SessionList.Type
