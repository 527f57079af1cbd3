/**
 * The dispatcher's statements: claim due deliveries (any instance, `FOR UPDATE SKIP LOCKED`), record
 * each attempt's outcome, retry with backoff until the retry window closes, and disable an endpoint
 * that has failed for a whole window. PostgreSQL only: the retries live in the database so that
 * they survive restarts and are shared by every instance.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { repository } from "../Domain/Errors.ts"
import { transaction } from "../Repository.ts"
import { OUTBOUND_CHANNEL } from "./Outbox.ts"

/** A claimed attempt: what to send where, signed with which secrets. */
export const Claimed = Schema.Struct({
  id: Schema.String,
  attempt: Schema.Int,
  event_id: Schema.String,
  body: Schema.String,
  endpoint_id: Schema.String,
  url: Schema.String,
  secret: Schema.String,
  /** The secret a rotation replaced, while it still signs. */
  previous_secret: Schema.NullOr(Schema.String),
})
export type Claimed = typeof Claimed.Type

const Claim = Schema.Struct({ limit: Schema.Int, leaseSeconds: Schema.Number })

/** What one attempt found. */
export interface Outcome {
  readonly attemptedAt: Date
  readonly statusCode: number | null
  readonly latencyMs: number
  readonly error: string | null
  readonly delivered: boolean
}

const Attempt = Schema.Struct({
  delivery_id: Schema.String,
  attempt: Schema.Int,
  attempted_at: Schema.DateFromSelf,
  status_code: Schema.NullOr(Schema.Int),
  latency_ms: Schema.Int,
  error: Schema.NullOr(Schema.String),
})

const Failure = Schema.Struct({
  id: Schema.String,
  attempt: Schema.Int,
  delaySeconds: Schema.Number,
  windowSeconds: Schema.Int,
})

const Failing = Schema.Struct({
  enabled: Schema.Boolean,
  failing_since: Schema.DateFromSelf,
  now: Schema.DateFromSelf,
})

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  /**
   * Due deliveries of enabled endpoints, each the oldest pending one of its session on its endpoint
   * (a later event waits until the earlier one is delivered or given up). The claim is a lease: the
   * attempt is counted and the row is not due again for `leaseSeconds`, so an instance that dies
   * mid-attempt leaves it to the others once the lease runs out.
   */
  const claim = SqlSchema.findAll({
    Request: Claim,
    Result: Claimed,
    execute: ({ limit, leaseSeconds }) => sql`
      UPDATE webhook_deliveries d
      SET attempts = d.attempts + 1,
        next_attempt_at = clock_timestamp() + make_interval(secs => ${leaseSeconds})
      FROM webhook_endpoints e, outbound_events ev
      WHERE d.id IN (
          SELECT c.id FROM webhook_deliveries c JOIN webhook_endpoints ce ON ce.id = c.endpoint_id
          WHERE c.status = 'pending' AND c.next_attempt_at <= clock_timestamp() AND ce.enabled
            AND NOT EXISTS (
              SELECT 1 FROM webhook_deliveries p
              WHERE p.endpoint_id = c.endpoint_id AND p.session_id = c.session_id
                AND p.status = 'pending' AND p.seq < c.seq)
          ORDER BY c.next_attempt_at, c.seq LIMIT ${limit}
          FOR UPDATE OF c SKIP LOCKED)
        AND e.id = d.endpoint_id AND ev.id = d.event_id
      RETURNING d.id, d.attempts AS attempt, d.event_id, ev.body, e.id AS endpoint_id, e.url, e.secret,
        CASE WHEN e.previous_secret_expires_at > clock_timestamp() THEN e.previous_secret END
          AS previous_secret`,
  })

  const insertAttempt = SqlSchema.void({
    Request: Attempt,
    execute: (a) => sql`INSERT INTO webhook_delivery_attempts ${sql.insert(a)} ON CONFLICT DO NOTHING`,
  })

  const markDelivered = SqlSchema.findOne({
    Request: Schema.Struct({ id: Schema.String, attempt: Schema.Int }),
    Result: Schema.Struct({ endpoint_id: Schema.String }),
    execute: ({ id, attempt }) => sql`
      UPDATE webhook_deliveries SET status = 'delivered', delivered_at = clock_timestamp()
      WHERE id = ${id} AND attempts = ${attempt} AND status = 'pending'
      RETURNING endpoint_id`,
  })

  /** The next attempt after `delaySeconds`, but none after the window: the last one is at its end. */
  const markFailed = SqlSchema.findOne({
    Request: Failure,
    Result: Schema.Struct({ status: Schema.String, next_attempt_at: Schema.DateFromSelf }),
    execute: (f) => sql`
      UPDATE webhook_deliveries SET
        status = CASE WHEN retry_from + make_interval(secs => ${f.windowSeconds}) <= clock_timestamp()
          THEN 'failed' ELSE 'pending' END,
        next_attempt_at = least(clock_timestamp() + make_interval(secs => ${f.delaySeconds}),
          retry_from + make_interval(secs => ${f.windowSeconds}))
      WHERE id = ${f.id} AND attempts = ${f.attempt} AND status = 'pending'
      RETURNING status, next_attempt_at`,
  })

  const endpointFailing = SqlSchema.findOne({
    Request: Schema.String,
    Result: Failing,
    execute: (id) => sql`
      UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, clock_timestamp())
      WHERE id = ${id} RETURNING enabled, failing_since, clock_timestamp() AS now`,
  })

  const disable = SqlSchema.void({
    Request: Schema.Struct({ id: Schema.String, reason: Schema.String }),
    execute: ({ id, reason }) => sql`
      UPDATE webhook_endpoints SET enabled = false, disabled_reason = ${reason}, updated_at = clock_timestamp()
      WHERE id = ${id}`,
  })

  const attemptRow = (c: Claimed, o: Outcome) => ({
    delivery_id: c.id,
    attempt: c.attempt,
    attempted_at: o.attemptedAt,
    status_code: o.statusCode,
    latency_ms: Math.round(o.latencyMs),
    error: o.error,
  })

  /**
   * The endpoint's row, locked first: a deletion of the endpoint locks it and then its deliveries
   * (the cascade), so a recording that locked the delivery first and the endpoint after could deadlock
   * with it. False when the endpoint (and so the delivery) is gone.
   */
  const lockEndpoint = (id: string) =>
    Effect.map(
      sql`SELECT 1 FROM webhook_endpoints WHERE id = ${id} FOR NO KEY UPDATE`,
      (rows) => rows.length > 0,
    )

  /**
   * Records an attempt. A success ends the delivery and the endpoint's failing streak; a failure
   * schedules the next attempt (None when the delivery was given up) and disables an endpoint whose
   * deliveries have all failed for `windowSeconds`. An outcome for a claim that was taken over (its
   * lease ran out) is kept in the log but changes nothing else; one for a deleted endpoint is dropped.
   */
  const record = (c: Claimed, o: Outcome, delaySeconds: number, windowSeconds: number) =>
    transaction(sql)(
      Effect.gen(function* () {
        if (!(yield* lockEndpoint(c.endpoint_id))) return Option.none<Date>()
        yield* insertAttempt(attemptRow(c, o))
        if (o.delivered) {
          const done = yield* markDelivered({ id: c.id, attempt: c.attempt })
          if (Option.isSome(done))
            yield* sql`UPDATE webhook_endpoints SET failing_since = NULL
              WHERE id = ${done.value.endpoint_id} AND failing_since IS NOT NULL`
          return Option.none<Date>()
        }
        const next = yield* markFailed({ id: c.id, attempt: c.attempt, delaySeconds, windowSeconds })
        const failing = yield* endpointFailing(c.endpoint_id)
        if (Option.isSome(failing)) {
          const { enabled, failing_since, now } = failing.value
          if (enabled && now.getTime() - failing_since.getTime() >= windowSeconds * 1000) {
            const hours = Math.round((windowSeconds / 3600) * 10) / 10
            yield* disable({
              id: c.endpoint_id,
              reason:
                `Disabled at ${now.toISOString()}: every delivery since ${failing_since.toISOString()} ` +
                `(${hours} h) failed; the last: ${o.error ?? `HTTP ${o.statusCode}`}. Enable it again with ` +
                "PATCH {enabled: true}.",
            })
          }
        }
        return Option.flatMap(next, (row) =>
          row.status === "pending" ? Option.some(row.next_attempt_at) : Option.none(),
        )
      }),
    )

  /** An attempt cut short by shutdown: logged as such and due again at once (no backoff). */
  const release = (c: Claimed, o: Outcome) =>
    transaction(sql)(
      Effect.gen(function* () {
        if (!(yield* lockEndpoint(c.endpoint_id))) return
        yield* insertAttempt(attemptRow(c, o))
        yield* sql`UPDATE webhook_deliveries SET next_attempt_at = clock_timestamp()
          WHERE id = ${c.id} AND attempts = ${c.attempt} AND status = 'pending'`
        yield* sql`SELECT pg_notify(${OUTBOUND_CHANNEL}, 'due')`
      }),
    )

  /** Finished deliveries (their attempts with them) and then unreferenced events older than this. */
  const prune = (olderThanDays: number) =>
    transaction(sql)(
      Effect.gen(function* () {
        yield* sql`DELETE FROM webhook_deliveries WHERE status <> 'pending'
          AND created_at < now() - make_interval(days => ${olderThanDays})`
        yield* sql`DELETE FROM outbound_events e WHERE created_at < now() - make_interval(days => ${olderThanDays})
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)`
      }),
    )

  return repository({ claim, record, release, prune })
})

export class DeliveriesRepo extends Context.Tag("Parley/WebhookDeliveriesRepo")<
  DeliveriesRepo,
  Effect.Effect.Success<typeof make>
>() {
  static readonly Live = Layer.effect(DeliveriesRepo, make)
}
