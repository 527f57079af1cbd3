import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import { orUnavailable } from "../Domain/Errors.ts"
import type { ErrorLogEntry, Participant, SessionStatus, TranscriptEntry } from "../Domain/Session.ts"

export interface SessionRow {
  readonly id: string
  readonly org_id: string
  readonly agent_id: string
  readonly status: SessionStatus
  readonly participant: Participant
  readonly context: Readonly<Record<string, unknown>> | null
  readonly system_instruction: string
  readonly transcript: ReadonlyArray<TranscriptEntry> | null
  readonly results: Readonly<Record<string, unknown>> | null
  readonly extraction_warnings: ReadonlyArray<string>
  readonly duration_seconds: number | null
  readonly max_duration_seconds: number | null
  readonly error_log: ReadonlyArray<ErrorLogEntry>
  readonly metadata: Readonly<Record<string, unknown>>
  readonly expires_at: Date
  readonly claimed_at: Date | null
  readonly created_at: Date
  readonly updated_at: Date
  readonly completed_at: Date | null
}

export interface NewSession {
  readonly id: string
  readonly orgId: string
  readonly agentId: string
  readonly participant: Participant
  readonly context: Readonly<Record<string, unknown>> | null
  readonly systemInstruction: string
  readonly maxDurationSeconds: number | null
  readonly createdAt: Date
  readonly expiresAt: Date
}

export interface Outcome {
  readonly status: "completed" | "failed"
  readonly results: Readonly<Record<string, unknown>> | null
  readonly warnings: ReadonlyArray<string>
  readonly errors: ReadonlyArray<ErrorLogEntry>
}

const json = (value: unknown) => (value === null ? null : JSON.stringify(value))

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const first = Effect.map((rows: ReadonlyArray<SessionRow>) => Option.fromNullable(rows[0]))

  return {
    insert: (s: NewSession) =>
      orUnavailable(sql<SessionRow>`
        INSERT INTO sessions (id, org_id, agent_id, status, participant, context, system_instruction,
          max_duration_seconds, created_at, updated_at, expires_at)
        VALUES (${s.id}, ${s.orgId}, ${s.agentId}, 'active', ${json(s.participant)}::jsonb,
          ${json(s.context)}::jsonb, ${s.systemInstruction}, ${s.maxDurationSeconds},
          ${s.createdAt}, ${s.createdAt}, ${s.expiresAt})
        RETURNING *`).pipe(Effect.map((rows) => rows[0])),

    find: (orgId: string, id: string) =>
      orUnavailable(sql<SessionRow>`SELECT * FROM sessions WHERE org_id = ${orgId} AND id = ${id}`).pipe(
        first,
      ),

    /**
     * The one atomic step that decides who completes a session: only an `active` row within its
     * grace period moves to `completing`, and its transcript is stored in the same statement.
     * `claimed_at` (millisecond precision, so it round-trips through a JS Date) identifies the claim.
     */
    claim: (
      orgId: string,
      id: string,
      transcript: ReadonlyArray<TranscriptEntry>,
      duration: number | null,
      graceSeconds: number,
    ) =>
      orUnavailable(sql<SessionRow>`
        UPDATE sessions SET status = 'completing', transcript = ${json(transcript)}::jsonb,
          duration_seconds = ${duration}, claimed_at = date_trunc('milliseconds', clock_timestamp()), updated_at = clock_timestamp()
        WHERE org_id = ${orgId} AND id = ${id} AND status = 'active'
          AND expires_at + make_interval(secs => ${graceSeconds}) >= now()
        RETURNING *`).pipe(first),

    /** Records the extraction outcome, if this claim still owns the row. */
    finish: (id: string, claimedAt: Date, o: Outcome) =>
      orUnavailable(sql<SessionRow>`
        UPDATE sessions SET status = ${o.status}, results = ${json(o.results)}::jsonb,
          extraction_warnings = ${json(o.warnings)}::jsonb,
          error_log = error_log || ${json(o.errors)}::jsonb,
          metadata = CASE WHEN ${o.warnings.length} > 0
            THEN metadata || jsonb_build_object('pi_extraction_warnings', ${json(o.warnings)}::jsonb)
            ELSE metadata END,
          completed_at = clock_timestamp(), updated_at = clock_timestamp()
        WHERE id = ${id} AND status = 'completing' AND claimed_at = ${claimedAt}
        RETURNING *`).pipe(first),

    /** Active sessions past their grace period become `expired`; returns their ids. */
    expireDue: (graceSeconds: number) =>
      orUnavailable(sql<{ id: string }>`
        UPDATE sessions SET status = 'expired', updated_at = clock_timestamp()
        WHERE status = 'active' AND expires_at + make_interval(secs => ${graceSeconds}) < now()
        RETURNING id`).pipe(Effect.map((rows) => rows.map((r) => r.id))),

    /** Takes over one session whose completing instance stopped renewing (died mid-extraction). */
    reclaimStale: (leaseSeconds: number) =>
      orUnavailable(sql<SessionRow>`
        UPDATE sessions SET claimed_at = date_trunc('milliseconds', clock_timestamp()), updated_at = clock_timestamp()
        WHERE id = (
          SELECT id FROM sessions
          WHERE status = 'completing' AND claimed_at < now() - make_interval(secs => ${leaseSeconds})
          ORDER BY claimed_at LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING *`).pipe(first),

    /** Event ids older than LiveKit's redelivery window are no longer needed for deduplication. */
    pruneEvents: (olderThanSeconds: number) =>
      orUnavailable(sql`
        DELETE FROM webhook_events WHERE received_at < now() - make_interval(secs => ${olderThanSeconds})`),

    /** Webhook bookkeeping, deduplicated by event id, in one transaction. */
    recordEvent: (
      eventId: string,
      event: string,
      sessionId: string,
      patch: (metadata: Readonly<Record<string, unknown>>) => Readonly<Record<string, unknown>>,
    ) =>
      sql
        .withTransaction(
          Effect.gen(function* () {
            const [row] = yield* sql<{ metadata: Record<string, unknown> }>`
              SELECT metadata FROM sessions WHERE id = ${sessionId} FOR UPDATE`
            if (row === undefined) return "unknown_session" as const
            const inserted = yield* sql`
              INSERT INTO webhook_events (event_id, event) VALUES (${eventId}, ${event})
              ON CONFLICT (event_id) DO NOTHING RETURNING event_id`
            if (inserted.length === 0) return "duplicate" as const
            yield* sql`
              UPDATE sessions SET metadata = ${json(patch(row.metadata))}::jsonb, updated_at = clock_timestamp()
              WHERE id = ${sessionId}`
            return "recorded" as const
          }),
        )
        .pipe(orUnavailable),
  }
})

export class SessionsRepo extends Context.Tag("Parley/SessionsRepo")<
  SessionsRepo,
  Effect.Effect.Success<typeof make>
>() {
  static readonly Live = Layer.effect(SessionsRepo, make)
}
