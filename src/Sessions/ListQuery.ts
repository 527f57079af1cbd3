/**
 * One page of an organization's sessions, newest first, in PostgreSQL and in memory. The order is
 * `created_at DESC, id DESC` (ids break ties between equal timestamps), and the cursor compares that
 * pair, so pages never skip or repeat a session whatever the timestamps. The indexes of migration 0003
 * serve it: `(org_id, created_at DESC, id DESC)`, and with `agent_id` `(org_id, agent_id, created_at
 * DESC, id DESC)`; status and date filters narrow the same index scan.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import type { SessionStatus } from "../Domain/Session.ts"

export interface PageQuery {
  readonly orgId: string
  readonly agentId?: string | undefined
  readonly statuses?: ReadonlyArray<SessionStatus> | undefined
  /** Inclusive: `created_at >= createdAfter`. */
  readonly createdAfter?: Date | undefined
  /** Exclusive: `created_at < createdBefore`. */
  readonly createdBefore?: Date | undefined
  /** A session of the organization: the page starts after it. */
  readonly startingAfter?: string | undefined
  readonly limit: number
  /** Whether to read the transcripts (else the column is not even fetched). */
  readonly transcripts: boolean
}

/** A page, or None when `startingAfter` is not a session of the organization. */
export type Page<A> = Option.Option<{ readonly sessions: ReadonlyArray<A>; readonly hasMore: boolean }>

/** The columns a list item needs: everything but the instruction and the claim, the transcript if asked. */
const columns = (sql: SqlClient.SqlClient, transcripts: boolean) => sql`
  id, agent_id, status, participant, context, ${transcripts ? sql`transcript` : sql`NULL::jsonb AS transcript`},
  results, extraction_warnings, duration_seconds, max_duration_seconds, error_log, metadata, expires_at,
  created_at, updated_at, completed_at`

/** The page statement, exported for the plan test and the bench (they EXPLAIN it). */
export const pageStatement = (sql: SqlClient.SqlClient, q: PageQuery) => {
  const where = [sql`org_id = ${q.orgId}`]
  if (q.agentId !== undefined) where.push(sql`agent_id = ${q.agentId}`)
  if (q.statuses !== undefined && q.statuses.length > 0) where.push(sql`status IN ${sql.in(q.statuses)}`)
  if (q.createdAfter !== undefined) where.push(sql`created_at >= ${q.createdAfter}`)
  if (q.createdBefore !== undefined) where.push(sql`created_at < ${q.createdBefore}`)
  // The cursor's timestamp is read in the statement, at full (microsecond) precision; a row
  // comparison on (created_at, id) is an index condition, so a deep page costs what the first does.
  if (q.startingAfter !== undefined)
    where.push(sql`(created_at, id) < (
      (SELECT created_at FROM sessions WHERE org_id = ${q.orgId} AND id = ${q.startingAfter}),
      ${q.startingAfter}::uuid)`)
  // one row more than asked says whether there is a next page
  return sql`
    SELECT ${columns(sql, q.transcripts)} FROM sessions WHERE ${sql.and(where)}
    ORDER BY created_at DESC, id DESC LIMIT ${q.limit + 1}`
}

const pageOf = <A>(rows: ReadonlyArray<A>, q: PageQuery): Page<A> =>
  Option.some({ sessions: rows.slice(0, q.limit), hasMore: rows.length > q.limit })

export const listInDatabase =
  <A, I>(sql: SqlClient.SqlClient, Row: Schema.Schema<A, I>) =>
  (q: PageQuery) =>
    Effect.gen(function* () {
      const rows = yield* Effect.flatMap(pageStatement(sql, q), Schema.decodeUnknown(Schema.Array(Row)))
      // An empty page after a cursor: the cursor may be no session of this organization.
      if (rows.length === 0 && q.startingAfter !== undefined) {
        const found = yield* sql`SELECT 1 FROM sessions WHERE org_id = ${q.orgId} AND id = ${q.startingAfter}`
        if (found.length === 0) return Option.none()
      }
      return pageOf(rows, q)
    })

interface ListedRow {
  readonly id: string
  readonly org_id: string
  readonly agent_id: string
  readonly status: string
  readonly created_at: Date
  readonly transcript: unknown
}

/** Newest first; equal timestamps by id, descending (lower-case UUIDs sort as PostgreSQL sorts uuids). */
const newestFirst = (a: ListedRow, b: ListedRow) =>
  b.created_at.getTime() - a.created_at.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)

export const listInMemory =
  <Row extends ListedRow, A, E>(
    rows: Effect.Effect<ReadonlyArray<Row>>,
    decode: (row: Row) => Effect.Effect<A, E>,
  ) =>
  (q: PageQuery) =>
    Effect.gen(function* () {
      const own = (yield* rows).filter((row) => row.org_id === q.orgId)
      const cursor = own.find((row) => row.id === q.startingAfter)
      if (q.startingAfter !== undefined && cursor === undefined) return Option.none()
      const matching = own
        .filter(
          (row) =>
            (q.agentId === undefined || row.agent_id === q.agentId) &&
            (q.statuses === undefined ||
              q.statuses.length === 0 ||
              q.statuses.some((s) => s === row.status)) &&
            (q.createdAfter === undefined || row.created_at >= q.createdAfter) &&
            (q.createdBefore === undefined || row.created_at < q.createdBefore) &&
            (cursor === undefined || newestFirst(cursor, row) < 0),
        )
        .sort(newestFirst)
        .slice(0, q.limit + 1)
        .map((row) => (q.transcripts ? row : { ...row, transcript: null }))
      return pageOf(yield* Effect.forEach(matching, decode), q)
    })
