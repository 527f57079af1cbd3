import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Effect, Option, Schema } from "effect"
import { fromId, Jsonb, UnixFromDate } from "../Domain/Columns.ts"
import { repository } from "../Domain/Errors.ts"
import { JsonRecord } from "../Domain/Fields.ts"
import { OrgId, SessionId } from "../Domain/Ids.ts"
import { ErrorLogEntry, Session, TranscriptEntry } from "../Domain/Session.ts"
import { eventOf, makeInMemoryOutbox, makeSqlOutbox, type SessionChange } from "../Outbound/Outbox.ts"
import {
  decodeFound,
  findOwned,
  makeTable,
  OrgKey,
  owned,
  RepositoryTag,
  transaction,
} from "../Repository.ts"
import { listInDatabase, listInMemory } from "./ListQuery.ts"

/** A `sessions` row as the API's Session. */
const SessionFromRow = Schema.Struct({
  ...Session.fields,
  session_id: fromId(SessionId),
  expires_at: UnixFromDate,
  created_at: UnixFromDate,
  updated_at: UnixFromDate,
  completed_at: Schema.NullOr(UnixFromDate),
})

/** The whole row: the Session, the organization it belongs to, its instruction and completion claim. */
export const StoredSession = Schema.Struct({
  ...SessionFromRow.fields,
  org_id: OrgId,
  system_instruction: Schema.String,
  /** Millisecond precision, so that it round-trips through a Date and identifies the claim. */
  claimed_at: Schema.NullOr(Schema.DateFromSelf),
  /** Last renewal of the claim's lease (its heartbeat); the claim itself counts as one. */
  lease_renewed_at: Schema.NullOr(Schema.DateFromSelf),
})
export type StoredSession = typeof StoredSession.Type
/** A row as the driver returns it. */
export type SessionRow = typeof StoredSession.Encoded

/** A row as the Session it is and the organization whose webhooks hear of its changes. */
const OwnedSession = Schema.Struct({ ...SessionFromRow.fields, org_id: OrgId })

/** The outbound event of a session that changed (see Outbound/Outbox.ts). */
const change = (row: typeof OwnedSession.Type, type = eventOf(row.status)): Array<SessionChange> => {
  const { org_id, ...session } = row
  return type === undefined ? [] : [{ type, orgId: org_id, session }]
}

const NewSession = Schema.Struct({
  id: Schema.String,
  org_id: Schema.String,
  agent_id: Schema.String,
  participant: Jsonb(Session.fields.participant),
  context: Schema.NullOr(Jsonb(JsonRecord)),
  system_instruction: Schema.String,
  max_duration_seconds: Schema.NullOr(Schema.Int),
  created_at: Schema.DateFromSelf,
  expires_at: Schema.DateFromSelf,
  /** `{}` when unset (a call cap's times, see Sessions/CallCap.ts). */
  metadata: Schema.optional(Jsonb(JsonRecord)),
})

/** Metadata keys to add to session `id`; a key it already has keeps its value. */
const MetadataKeys = Schema.Struct({ id: Schema.String, metadata: Jsonb(JsonRecord) })

/** The transcript a completion claims the session with. */
const Claim = Schema.Struct({
  ...OrgKey.fields,
  transcript: Jsonb(Schema.Array(TranscriptEntry)),
  duration_seconds: Schema.NullOr(Schema.Int),
  graceSeconds: Schema.Int,
})

/** What a completion records: the extraction's results, or the failure appended to the error log. */
export const Outcome = Schema.Struct({
  status: Schema.Literal("completed", "failed"),
  results: Schema.NullOr(Jsonb(JsonRecord)),
  warnings: Jsonb(Schema.Array(Schema.String)),
  errors: Jsonb(Schema.Array(ErrorLogEntry)),
})
export type Outcome = typeof Outcome.Type

/** The claim made at `claimed_at` on session `id`. */
const ClaimKey = Schema.Struct({ id: Schema.String, claimed_at: Schema.DateFromSelf })
type ClaimKey = typeof ClaimKey.Type

/** An outcome for the claim made at `claimed_at`. */
const Finish = Schema.Struct({ ...Outcome.fields, ...ClaimKey.fields })

/** A LiveKit webhook event, remembered by id so that a redelivery is recognised. */
export const WebhookEvent = Schema.Struct({ event_id: Schema.String, event: Schema.String })
type WebhookEvent = typeof WebhookEvent.Type

type Metadata = Readonly<Record<string, unknown>>

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // session changes and their webhook events are written in one transaction
  const outbox = yield* makeSqlOutbox
  const inTransaction = transaction(sql)

  const insertRow = SqlSchema.single({
    Request: NewSession,
    Result: OwnedSession,
    execute: (row) =>
      sql`INSERT INTO sessions ${sql.insert({ ...row, status: "active", updated_at: row.created_at })} RETURNING *`,
  })

  /**
   * The one atomic step that decides who completes a session: only an `active` row within its
   * grace period moves to `completing`, and its transcript is stored in the same statement.
   */
  const claim = SqlSchema.findOne({
    Request: Claim,
    Result: StoredSession,
    execute: (c) => sql`
      UPDATE sessions SET status = 'completing', transcript = ${c.transcript}::jsonb,
        duration_seconds = ${c.duration_seconds},
        claimed_at = date_trunc('milliseconds', clock_timestamp()), lease_renewed_at = NULL,
        updated_at = clock_timestamp()
      WHERE org_id = ${c.orgId} AND id = ${c.id} AND status = 'active'
        AND expires_at + make_interval(secs => ${c.graceSeconds}) >= now()
      RETURNING *`,
  })

  /** The claim's heartbeat: None once the claim is no longer this one (taken over, or finished). */
  const renewLease = SqlSchema.findOne({
    Request: ClaimKey,
    Result: StoredSession.pick("session_id"),
    execute: (k) => sql`
      UPDATE sessions SET lease_renewed_at = clock_timestamp()
      WHERE id = ${k.id} AND status = 'completing' AND claimed_at = ${k.claimed_at}
      RETURNING id`,
  })

  /** Records the extraction outcome, if this claim still owns the row. */
  const finishRow = SqlSchema.findOne({
    Request: Finish,
    Result: OwnedSession,
    execute: (f) => sql`
      UPDATE sessions SET status = ${f.status}, results = ${f.results}::jsonb,
        extraction_warnings = ${f.warnings}::jsonb, error_log = error_log || ${f.errors}::jsonb,
        metadata = CASE WHEN jsonb_array_length(${f.warnings}::jsonb) > 0
          THEN metadata || jsonb_build_object('pi_extraction_warnings', ${f.warnings}::jsonb)
          ELSE metadata END,
        completed_at = clock_timestamp(), updated_at = clock_timestamp()
      WHERE id = ${f.id} AND status = 'completing' AND claimed_at = ${f.claimed_at}
      RETURNING *`,
  })

  /** Active sessions past their grace period become `expired`. */
  const expireRows = SqlSchema.findAll({
    Request: Schema.Int,
    Result: OwnedSession,
    execute: (graceSeconds) => sql`
      UPDATE sessions SET status = 'expired', updated_at = clock_timestamp()
      WHERE status = 'active' AND expires_at + make_interval(secs => ${graceSeconds}) < now()
      RETURNING *`,
  })

  /** The new session, its `voice_session.started` event in the same transaction. */
  const insert = (row: typeof NewSession.Type) =>
    inTransaction(
      Effect.tap(insertRow(row), (owned) => outbox.record(change(owned, "voice_session.started"))),
    ).pipe(Effect.map(({ org_id: _, ...session }) => session))

  /** The outcome, its `voice_session.completed` / `.failed` event in the same transaction. */
  const finish = (f: typeof Finish.Type) =>
    inTransaction(
      Effect.tap(finishRow(f), (row) =>
        Option.isSome(row) ? outbox.record(change(row.value)) : Effect.void,
      ),
    ).pipe(Effect.map(Option.map(({ org_id: _, ...session }) => session)))

  /** Expires overdue sessions, each with its `voice_session.expired` event; returns their ids. */
  const expireDue = (graceSeconds: number) =>
    inTransaction(
      Effect.tap(expireRows(graceSeconds), (rows) => outbox.record(rows.flatMap((row) => change(row)))),
    ).pipe(Effect.map((rows) => rows.map((row) => row.session_id)))

  /** Takes over one session whose completing instance stopped renewing (died mid-extraction). */
  const reclaimStale = SqlSchema.findOne({
    Request: Schema.Int,
    Result: StoredSession,
    execute: (leaseSeconds) => sql`
      UPDATE sessions SET claimed_at = date_trunc('milliseconds', clock_timestamp()), lease_renewed_at = NULL,
        updated_at = clock_timestamp()
      WHERE id = (
        SELECT id FROM sessions
        WHERE status = 'completing'
          AND coalesce(lease_renewed_at, claimed_at) < now() - make_interval(secs => ${leaseSeconds})
        ORDER BY claimed_at LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
  })

  /** Event ids older than LiveKit's redelivery window are no longer needed for deduplication. */
  const pruneEvents = SqlSchema.void({
    Request: Schema.Int,
    execute: (olderThanSeconds) => sql`
      DELETE FROM webhook_events WHERE received_at < now() - make_interval(secs => ${olderThanSeconds})`,
  })

  const lockMetadata = SqlSchema.findOne({
    Request: Schema.String,
    Result: StoredSession.pick("metadata"),
    execute: (id) => sql`SELECT metadata FROM sessions WHERE id = ${id} FOR UPDATE`,
  })
  const insertEvent = SqlSchema.findOne({
    Request: WebhookEvent,
    Result: WebhookEvent.pick("event_id"),
    execute: (e) => sql`
      INSERT INTO webhook_events ${sql.insert(e)} ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
  })
  const writeMetadata = SqlSchema.void({
    Request: Schema.Struct({ id: Schema.String, metadata: Jsonb(JsonRecord) }),
    execute: ({ id, metadata }) => sql`
      UPDATE sessions SET metadata = ${metadata}::jsonb, updated_at = clock_timestamp() WHERE id = ${id}`,
  })

  /** Webhook bookkeeping, deduplicated by event id, in one transaction. */
  const recordEvent = (event: WebhookEvent, sessionId: string, patch: (metadata: Metadata) => Metadata) =>
    inTransaction(
      Effect.gen(function* () {
        const row = yield* lockMetadata(sessionId)
        if (Option.isNone(row)) return "unknown_session" as const
        if (Option.isNone(yield* insertEvent(event))) return "duplicate" as const
        yield* writeMetadata({ id: sessionId, metadata: patch(row.value.metadata) })
        return "recorded" as const
      }),
    )

  /** Adds the keys the session's metadata lacks (a repeat changes nothing, updated_at included). */
  const addMetadata = SqlSchema.void({
    Request: MetadataKeys,
    execute: ({ id, metadata }) => sql`
      UPDATE sessions SET metadata = ${metadata}::jsonb || metadata, updated_at = clock_timestamp()
      WHERE id = ${id} AND ${metadata}::jsonb || metadata <> metadata`,
  })

  /** Which of these ids have a session row (of any organization). */
  const existing = SqlSchema.findAll({
    Request: Schema.Array(Schema.String),
    Result: Schema.Struct({ id: Schema.String }),
    execute: (ids) => sql`SELECT id::text AS id FROM sessions WHERE id IN ${sql.in(ids)}`,
  })

  return repository({
    insert,
    find: findOwned(sql, "sessions", SessionFromRow),
    list: listInDatabase(sql, SessionFromRow),
    existing: (ids: ReadonlyArray<string>) =>
      ids.length === 0 ? Effect.succeed([]) : Effect.map(existing(ids), (rows) => rows.map((row) => row.id)),
    claim,
    renewLease,
    finish,
    expireDue,
    reclaimStale,
    pruneEvents,
    recordEvent,
    addMetadata,
  })
})

/** The same operations on tables in memory, read through the same row schemas. */
const makeInMemory = Effect.gen(function* () {
  const sessions = yield* makeTable<SessionRow>()
  const events = yield* makeTable<WebhookEvent & { readonly received_at: Date }>()
  const decode = Schema.decode(SessionFromRow)
  const decodeSome = decodeFound(SessionFromRow)
  const stored = decodeFound(StoredSession)
  const claimedAt = (row: SessionRow) => row.claimed_at?.getTime() ?? 0
  const leaseAt = (row: SessionRow) => row.lease_renewed_at?.getTime() ?? claimedAt(row)
  const isClaim = (k: ClaimKey) => (row: SessionRow) =>
    row.id === k.id && row.status === "completing" && claimedAt(row) === k.claimed_at.getTime()
  // what the row lock and the transaction do for recordEvent in the database
  const transaction = yield* Effect.makeSemaphore(1)
  const outbox = yield* makeInMemoryOutbox
  const decodeOwned = Schema.decode(OwnedSession)
  const withoutOrg = ({ org_id: _, ...session }: typeof OwnedSession.Type) => session

  return repository(
    {
      insert: (s: typeof NewSession.Type) =>
        sessions
          .insert(() => ({
            ...s,
            status: "active",
            transcript: null,
            results: null,
            extraction_warnings: [],
            duration_seconds: null,
            error_log: [],
            metadata: s.metadata ?? {},
            claimed_at: null,
            lease_renewed_at: null,
            updated_at: s.created_at,
            completed_at: null,
          }))
          .pipe(
            Effect.flatMap(decodeOwned),
            Effect.tap((row) => outbox.record(change(row, "voice_session.started"))),
            Effect.map(withoutOrg),
          ),
      find: (key: OrgKey) => Effect.flatMap(sessions.find(owned(key)), decodeSome),
      list: listInMemory(sessions.rows, decode),
      existing: (ids: ReadonlyArray<string>) =>
        Effect.map(sessions.rows, (rows) => rows.filter((row) => ids.includes(row.id)).map((row) => row.id)),
      claim: (c: typeof Claim.Type) =>
        sessions
          .update(
            (row, at) =>
              owned(c)(row) &&
              row.status === "active" &&
              row.expires_at.getTime() + c.graceSeconds * 1000 >= at.getTime(),
            (row, at) =>
              Effect.succeed({
                ...row,
                status: "completing" as const,
                transcript: c.transcript,
                duration_seconds: c.duration_seconds,
                claimed_at: at,
                lease_renewed_at: null,
                updated_at: at,
              }),
          )
          .pipe(Effect.flatMap(stored)),
      renewLease: (k: ClaimKey) =>
        sessions
          .update(isClaim(k), (row, at) => Effect.succeed({ ...row, lease_renewed_at: at }))
          .pipe(Effect.map(Option.map((row) => ({ session_id: SessionId.make(row.id) })))),
      finish: (f: typeof Finish.Type) =>
        sessions
          .update(isClaim(f), (row, at) =>
            Effect.succeed({
              ...row,
              status: f.status,
              results: f.results,
              extraction_warnings: f.warnings,
              error_log: [...row.error_log, ...f.errors],
              metadata:
                f.warnings.length > 0
                  ? { ...row.metadata, pi_extraction_warnings: f.warnings }
                  : row.metadata,
              completed_at: at,
              updated_at: at,
            }),
          )
          .pipe(
            Effect.flatMap(decodeFound(OwnedSession)),
            Effect.tap((row) => (Option.isSome(row) ? outbox.record(change(row.value)) : Effect.void)),
            Effect.map(Option.map(withoutOrg)),
          ),
      expireDue: (graceSeconds: number) =>
        sessions
          .updateAll(
            (row, at) =>
              row.status === "active" && row.expires_at.getTime() + graceSeconds * 1000 < at.getTime(),
            (row, at) => ({ ...row, status: "expired", updated_at: at }),
          )
          .pipe(
            Effect.flatMap((rows) => Effect.forEach(rows, (row) => decodeOwned(row))),
            Effect.tap((rows) => outbox.record(rows.flatMap((row) => change(row)))),
            Effect.map((rows) => rows.map((row) => row.session_id)),
          ),
      reclaimStale: (leaseSeconds: number) =>
        Effect.gen(function* () {
          const stale = (row: SessionRow, at: Date) =>
            row.status === "completing" && leaseAt(row) < at.getTime() - leaseSeconds * 1000
          const at = new Date(yield* Clock.currentTimeMillis)
          // the oldest claim first; one that changes meanwhile was taken over by someone else
          const oldest = (yield* sessions.rows)
            .filter((row) => stale(row, at))
            .sort((a, b) => claimedAt(a) - claimedAt(b))[0]
          const row = yield* sessions.update(
            (row, at) => row === oldest && stale(row, at),
            (row, at) => Effect.succeed({ ...row, claimed_at: at, lease_renewed_at: null, updated_at: at }),
          )
          return yield* stored(row)
        }),
      pruneEvents: (olderThanSeconds: number) =>
        events.delete((event, at) => event.received_at.getTime() < at.getTime() - olderThanSeconds * 1000),
      recordEvent: (event: WebhookEvent, sessionId: string, patch: (metadata: Metadata) => Metadata) =>
        Effect.gen(function* () {
          if (Option.isNone(yield* sessions.find((row) => row.id === sessionId)))
            return "unknown_session" as const
          if (Option.isSome(yield* events.find((e) => e.event_id === event.event_id)))
            return "duplicate" as const
          yield* events.insert((at) => ({ ...event, received_at: at }))
          yield* sessions.update(
            (row) => row.id === sessionId,
            (row, at) => Effect.succeed({ ...row, metadata: patch(row.metadata), updated_at: at }),
          )
          return "recorded" as const
        }).pipe(transaction.withPermits(1)),
      addMetadata: ({ id, metadata }: typeof MetadataKeys.Type) =>
        Effect.asVoid(
          sessions.update(
            (row) => row.id === id && Object.keys(metadata).some((key) => !(key in row.metadata)),
            (row, at) =>
              Effect.succeed({ ...row, metadata: { ...metadata, ...row.metadata }, updated_at: at }),
          ),
        ),
    },
    // nothing to be unavailable here: a row its schema rejects is a bug, as in the database
    Effect.orDie,
  )
})

export class SessionsRepo extends RepositoryTag<SessionsRepo>()("Parley/SessionsRepo", make, makeInMemory) {}
