/**
 * The outbox of outbound webhooks: a session change records its event in the transaction that makes
 * the change (Sessions/Repo.ts), fanned out at once into one delivery per subscribed endpoint, so an
 * event exists exactly when its change does, whatever happens to the process afterwards. The
 * dispatcher (Dispatcher.ts) delivers them; a NOTIFY sent with the commit wakes it on every instance.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Effect, Schema } from "effect"
import { randomBase62 } from "../Domain/RequestId.ts"
import { Session } from "../Domain/Session.ts"
import type { EventType } from "../Domain/WebhookEndpoint.ts"
import { makeTable } from "../Repository.ts"

/** Sent (with the commit) when deliveries were added or became due: the dispatchers look for work. */
export const OUTBOUND_CHANNEL = "parley_outbound"

/** The event a session that reached `status` sends, if any. */
export const eventOf = (status: string): EventType | undefined =>
  status === "completed"
    ? "voice_session.completed"
    : status === "failed"
      ? "voice_session.failed"
      : status === "expired"
        ? "voice_session.expired"
        : undefined

export interface SessionChange {
  readonly type: EventType
  readonly orgId: string
  readonly session: Session
}

const encodeSession = Schema.encode(Session)

/** The message: its id (the `webhook-id` of every attempt) and the exact body sent. */
const message = ({ type, session }: SessionChange) =>
  Effect.gen(function* () {
    const data = yield* encodeSession(session)
    const id = randomBase62(24, "msg_")
    const timestamp = new Date(yield* Clock.currentTimeMillis).toISOString()
    return { id, body: JSON.stringify({ id, type, timestamp, data }) }
  }).pipe(Effect.orDie) // a session read through its own schema always encodes

const Row = Schema.Struct({
  id: Schema.String,
  org_id: Schema.String,
  session_id: Schema.String,
  type: Schema.String,
  body: Schema.String,
})

/** Records changes through the SqlClient of the caller's transaction. */
export const makeSqlOutbox = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Only organizations with a subscribed, enabled endpoint get an event row at all.
  const insert = SqlSchema.findAll({
    Request: Row,
    Result: Schema.Struct({ id: Schema.String }),
    execute: (e) => sql`
      WITH targets AS (
        SELECT id FROM webhook_endpoints
        WHERE org_id = ${e.org_id} AND enabled
          AND (${e.type} = ANY (enabled_events) OR '*' = ANY (enabled_events))
      ), event AS (
        INSERT INTO outbound_events (id, org_id, session_id, type, body)
        SELECT ${e.id}, ${e.org_id}, ${e.session_id}, ${e.type}, ${e.body}
        WHERE EXISTS (SELECT 1 FROM targets)
        RETURNING id
      )
      INSERT INTO webhook_deliveries (endpoint_id, event_id, session_id)
      SELECT targets.id, event.id, ${e.session_id} FROM targets, event
      RETURNING id`,
  })
  const record = (changes: ReadonlyArray<SessionChange>) =>
    Effect.gen(function* () {
      let deliveries = 0
      for (const change of changes) {
        const { id, body } = yield* message(change)
        const rows = yield* insert({
          id,
          org_id: change.orgId,
          session_id: change.session.session_id,
          type: change.type,
          body,
        })
        deliveries += rows.length
      }
      // delivered with the commit, so no dispatcher looks before the rows are visible
      if (deliveries > 0) yield* sql`SELECT pg_notify(${OUTBOUND_CHANNEL}, 'due')`
    })
  return { record }
})

/** The in-memory repositories' outbox: the events, kept in memory (no endpoints there to deliver to). */
export const makeInMemoryOutbox = Effect.gen(function* () {
  const events = yield* makeTable<typeof Row.Type>()
  const record = (changes: ReadonlyArray<SessionChange>) =>
    Effect.forEach(
      changes,
      (change) =>
        Effect.flatMap(message(change), ({ id, body }) =>
          events.insert(() => ({
            id,
            org_id: change.orgId,
            session_id: change.session.session_id,
            type: change.type,
            body,
          })),
        ),
      { discard: true },
    )
  return { record, events: events.rows }
})
