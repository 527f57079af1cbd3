/**
 * LiveKit rooms still to be deleted: a failed start's room whose compensating delete failed, or whose
 * creation may finish at LiveKit after the start gave up on it; and a capped session's room, due at
 * its call cap (scheduled with the session row, see CallCap.ts). The sweeper deletes each once it is
 * due, retrying with backoff; any instance may, one at a time per room.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Effect, Schema } from "effect"
import { repository } from "../Domain/Errors.ts"
import { makeTable, RepositoryTag } from "../Repository.ts"

/** A room to delete once `delaySeconds` have passed (the last error, if a delete already failed). */
const Pending = Schema.Struct({
  room: Schema.String,
  delaySeconds: Schema.Int,
  error: Schema.NullOr(Schema.String),
})
type Pending = typeof Pending.Type

/** A call cap: `room` (of session `sessionId`) is to be deleted at `dueAt`. */
const CallCap = Schema.Struct({ room: Schema.String, sessionId: Schema.String, dueAt: Schema.DateFromSelf })
type CallCap = typeof CallCap.Type

/** A claimed cleanup; `session_id` when it is a session's call cap. */
const Due = Schema.Struct({
  room: Schema.String,
  attempts: Schema.Int,
  session_id: Schema.NullOr(Schema.String),
})
export type DueCleanup = typeof Due.Type

/** How long a claimed cleanup is left to the instance that claimed it before another may try. */
const CLAIM_SECONDS = 60

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return repository({
    /** Records a room to delete; a room recorded twice keeps its earlier attempt time. */
    record: SqlSchema.void({
      Request: Pending,
      execute: (p) => sql`
        INSERT INTO room_cleanups (room, next_attempt_at, last_error)
        VALUES (${p.room}, now() + make_interval(secs => ${p.delaySeconds}), ${p.error})
        ON CONFLICT (room) DO UPDATE SET
          next_attempt_at = LEAST(room_cleanups.next_attempt_at, EXCLUDED.next_attempt_at),
          last_error = coalesce(EXCLUDED.last_error, room_cleanups.last_error)`,
    }),
    /** A capped session's room, to delete at its cap; written in the transaction that inserts the session. */
    schedule: SqlSchema.void({
      Request: CallCap,
      execute: (c) => sql`
        INSERT INTO room_cleanups (room, next_attempt_at, session_id)
        VALUES (${c.room}, ${c.dueAt}, ${c.sessionId})`,
    }),
    /** Up to `limit` due cleanups, claimed for this instance (others skip them meanwhile). */
    claimDue: SqlSchema.findAll({
      Request: Schema.Int,
      Result: Due,
      execute: (limit) => sql`
        UPDATE room_cleanups SET next_attempt_at = now() + make_interval(secs => ${CLAIM_SECONDS})
        WHERE room IN (
          SELECT room FROM room_cleanups WHERE next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING room, attempts, session_id::text AS session_id`,
    }),
    done: SqlSchema.void({
      Request: Schema.String,
      execute: (room) => sql`DELETE FROM room_cleanups WHERE room = ${room}`,
    }),
    /** Another failed attempt: the next one after `delaySeconds`. */
    failed: SqlSchema.void({
      Request: Pending,
      execute: (p) => sql`
        UPDATE room_cleanups SET attempts = attempts + 1, last_error = ${p.error},
          next_attempt_at = now() + make_interval(secs => ${p.delaySeconds})
        WHERE room = ${p.room}`,
    }),
  })
})

type Row = {
  room: string
  attempts: number
  next_attempt_at: Date
  last_error: string | null
  session_id: string | null
}

const makeInMemory = Effect.gen(function* () {
  const rows = yield* makeTable<Row>()
  const later = (at: Date, seconds: number) => new Date(at.getTime() + seconds * 1000)
  return repository(
    {
      record: (p: Pending) =>
        Effect.gen(function* () {
          const updated = yield* rows.update(
            (row) => row.room === p.room,
            (row, at) =>
              Effect.succeed({
                ...row,
                next_attempt_at: new Date(
                  Math.min(row.next_attempt_at.getTime(), later(at, p.delaySeconds).getTime()),
                ),
                last_error: p.error ?? row.last_error,
              }),
          )
          if (updated._tag === "None")
            yield* rows.insert((at) => ({
              room: p.room,
              attempts: 0,
              next_attempt_at: later(at, p.delaySeconds),
              last_error: p.error,
              session_id: null,
            }))
        }),
      schedule: (c: CallCap) =>
        Effect.asVoid(
          rows.insert(() => ({
            room: c.room,
            attempts: 0,
            next_attempt_at: c.dueAt,
            last_error: null,
            session_id: c.sessionId,
          })),
        ),
      claimDue: (limit: number) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          // the `limit` due longest, as the SQL picks them; only those are claimed
          const chosen = new Set(
            (yield* rows.rows)
              .filter((row) => row.next_attempt_at.getTime() <= now)
              .sort((a, b) => a.next_attempt_at.getTime() - b.next_attempt_at.getTime())
              .slice(0, limit)
              .map((row) => row.room),
          )
          const claimed = yield* rows.updateAll(
            (row) => chosen.has(row.room),
            (row, at) => ({ ...row, next_attempt_at: later(at, CLAIM_SECONDS) }),
          )
          return claimed.map(({ room, attempts, session_id }) => ({ room, attempts, session_id }))
        }),
      done: (room: string) => rows.delete((row) => row.room === room),
      failed: (p: Pending) =>
        Effect.asVoid(
          rows.update(
            (row) => row.room === p.room,
            (row, at) =>
              Effect.succeed({
                ...row,
                attempts: row.attempts + 1,
                last_error: p.error,
                next_attempt_at: later(at, p.delaySeconds),
              }),
          ),
        ),
    },
    Effect.orDie,
  )
})

export class RoomCleanups extends RepositoryTag<RoomCleanups>()("Parley/RoomCleanups", make, makeInMemory) {}
