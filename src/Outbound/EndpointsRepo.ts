/** The webhook endpoints of organizations, and the deliveries their owners can read and redeliver. */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { fromId, UnixFromDate } from "../Domain/Columns.ts"
import { repository } from "../Domain/Errors.ts"
import {
  Delivery,
  DeliveryAttempt,
  DeliveryId,
  EndpointId,
  WebhookEndpoint,
} from "../Domain/WebhookEndpoint.ts"
import {
  decodeFound,
  findOwned,
  makeTable,
  OrgKey,
  owned,
  RepositoryTag,
  transaction,
} from "../Repository.ts"
import { OUTBOUND_CHANNEL } from "./Outbox.ts"

/** A `webhook_endpoints` row as the API's endpoint (the secrets stay in the database). */
export const EndpointFromRow = Schema.Struct({
  ...WebhookEndpoint.fields,
  endpoint_id: fromId(EndpointId),
  failing_since: Schema.NullOr(UnixFromDate),
  previous_secret_expires_at: Schema.NullOr(UnixFromDate),
  created_at: UnixFromDate,
  updated_at: UnixFromDate,
})
const WithSecretFromRow = Schema.Struct({ ...EndpointFromRow.fields, secret: Schema.String })

/** What a create or an update sets. */
export const EndpointColumns = Schema.Struct({
  url: Schema.String,
  description: Schema.NullOr(Schema.String),
  enabled_events: Schema.Array(Schema.String),
  enabled: Schema.Boolean,
  /** Cleared when the endpoint is enabled again. */
  disabled_reason: Schema.NullOr(Schema.String),
})
export type EndpointColumns = typeof EndpointColumns.Type

const NewEndpoint = Schema.Struct({
  ...EndpointColumns.fields,
  id: Schema.String,
  org_id: Schema.String,
  secret: Schema.String,
})
type NewEndpoint = typeof NewEndpoint.Type

const Rotation = Schema.Struct({ ...OrgKey.fields, secret: Schema.String, overlapSeconds: Schema.Int })
type Rotation = typeof Rotation.Type

/** A page of an endpoint's deliveries, newest first; one more than asked tells whether there are more. */
const Page = Schema.Struct({
  endpointId: Schema.String,
  limit: Schema.Int,
  startingAfter: Schema.NullOr(Schema.String),
})

/** A page, or the one delivery `deliveryId`. */
const Selection = Schema.Struct({ ...Page.fields, deliveryId: Schema.NullOr(Schema.String) })
type Page = typeof Page.Type

const DeliveryFromRow = Schema.Struct({
  ...Delivery.fields,
  delivery_id: fromId(DeliveryId),
  next_attempt_at: Schema.NullOr(UnixFromDate),
  created_at: UnixFromDate,
  delivered_at: Schema.NullOr(UnixFromDate),
  attempts: Schema.Array(DeliveryAttempt),
})

const DeliveryKey = Schema.Struct({ orgId: Schema.String, endpointId: Schema.String, id: Schema.String })
type DeliveryKey = typeof DeliveryKey.Type

/** text[] parameters as one comma-separated string (event types hold no commas). */
const textArray = (values: ReadonlyArray<string>) => values.join(",")

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const insert = SqlSchema.single({
    Request: NewEndpoint,
    Result: WithSecretFromRow,
    execute: (e) => sql`
      INSERT INTO webhook_endpoints (id, org_id, url, description, enabled_events, enabled, disabled_reason, secret)
      VALUES (${e.id}, ${e.org_id}, ${e.url}, ${e.description},
        string_to_array(${textArray(e.enabled_events)}, ','), ${e.enabled}, ${e.disabled_reason}, ${e.secret})
      RETURNING *`,
  })

  const list = SqlSchema.findAll({
    Request: Schema.String,
    Result: EndpointFromRow,
    execute: (orgId) =>
      sql`SELECT * FROM webhook_endpoints WHERE org_id = ${orgId} ORDER BY created_at DESC, id DESC`,
  })

  const lock = findOwned(sql, "webhook_endpoints", EndpointFromRow, "FOR UPDATE")
  const write = SqlSchema.single({
    Request: Schema.Struct({ ...EndpointColumns.fields, id: Schema.String }),
    Result: EndpointFromRow,
    execute: (e) => sql`
      UPDATE webhook_endpoints SET url = ${e.url}, description = ${e.description},
        enabled_events = string_to_array(${textArray(e.enabled_events)}, ','), enabled = ${e.enabled},
        disabled_reason = ${e.disabled_reason},
        failing_since = CASE WHEN ${e.enabled} AND NOT enabled THEN NULL ELSE failing_since END,
        updated_at = clock_timestamp()
      WHERE id = ${e.id} RETURNING *`,
  })

  /** Read-modify-write under a row lock, so concurrent PATCHes never lose each other's fields. */
  const update = (key: OrgKey, change: (endpoint: WebhookEndpoint) => EndpointColumns) =>
    transaction(sql)(
      Effect.flatMap(
        lock(key),
        Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (endpoint) =>
            write({ ...change(endpoint), id: key.id }).pipe(
              // enabled again: its waiting deliveries are due, the dispatchers are told with the commit
              Effect.tap((updated) =>
                updated.enabled && !endpoint.enabled
                  ? sql`SELECT pg_notify(${OUTBOUND_CHANNEL}, 'due')`
                  : Effect.void,
              ),
              Effect.asSome,
            ),
        }),
      ),
    )

  const remove = SqlSchema.findOne({
    Request: OrgKey,
    Result: Schema.Struct({ id: Schema.String }),
    execute: ({ orgId, id }) =>
      sql`DELETE FROM webhook_endpoints WHERE org_id = ${orgId} AND id = ${id} RETURNING id`,
  })

  /** The new secret signs from now on; the one it replaces also signs for `overlapSeconds`. */
  const rotate = SqlSchema.findOne({
    Request: Rotation,
    Result: WithSecretFromRow,
    execute: (r) => sql`
      UPDATE webhook_endpoints SET previous_secret = secret,
        previous_secret_expires_at = clock_timestamp() + make_interval(secs => ${r.overlapSeconds}),
        secret = ${r.secret}, updated_at = clock_timestamp()
      WHERE org_id = ${r.orgId} AND id = ${r.id} RETURNING *`,
  })

  const selectDeliveries = SqlSchema.findAll({
    Request: Selection,
    Result: DeliveryFromRow,
    execute: (p) => sql`
      SELECT d.id, d.endpoint_id, d.event_id, ev.type AS event_type, d.session_id::text AS session_id,
        d.status, CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
        d.created_at, d.delivered_at,
        coalesce((
          SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt,
              'attempted_at', floor(extract(epoch FROM a.attempted_at))::bigint,
              'status_code', a.status_code, 'latency_ms', a.latency_ms, 'error', a.error) ORDER BY a.attempt)
          FROM (SELECT * FROM webhook_delivery_attempts WHERE delivery_id = d.id
                ORDER BY attempt DESC LIMIT 50) a), '[]'::jsonb) AS attempts
      FROM webhook_deliveries d JOIN outbound_events ev ON ev.id = d.event_id
      WHERE d.endpoint_id = ${p.endpointId}
        AND (${p.deliveryId}::uuid IS NULL OR d.id = ${p.deliveryId}::uuid)
        AND (${p.startingAfter}::uuid IS NULL OR d.seq < (
          SELECT seq FROM webhook_deliveries WHERE id = ${p.startingAfter}::uuid AND endpoint_id = ${p.endpointId}))
      ORDER BY d.seq DESC LIMIT ${p.limit + 1}`,
  })

  /** Due again now, with a new retry window; the dispatchers are told with the commit. */
  const redeliver = (key: DeliveryKey) =>
    transaction(sql)(
      Effect.gen(function* () {
        const rows = yield* sql`
          UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = clock_timestamp(),
            retry_from = clock_timestamp(), delivered_at = NULL
          FROM webhook_endpoints e
          WHERE d.id = ${key.id} AND d.endpoint_id = ${key.endpointId} AND e.id = d.endpoint_id
            AND e.org_id = ${key.orgId}
          RETURNING d.id`
        if (rows.length > 0) yield* sql`SELECT pg_notify(${OUTBOUND_CHANNEL}, 'due')`
        return rows.length > 0
      }),
    )

  return repository({
    insert,
    list,
    find: findOwned(sql, "webhook_endpoints", EndpointFromRow),
    update,
    remove: (key: OrgKey) => Effect.map(remove(key), Option.isSome),
    rotate,
    deliveries: (page: Page) =>
      Effect.map(selectDeliveries({ ...page, deliveryId: null }), (rows) => ({
        deliveries: rows.slice(0, page.limit),
        hasMore: rows.length > page.limit,
      })),
    /** One delivery of the endpoint (the endpoint's organization is checked by the caller). */
    delivery: (endpointId: string, id: string) =>
      Effect.map(selectDeliveries({ endpointId, limit: 1, startingAfter: null, deliveryId: id }), (rows) =>
        Option.fromNullable(rows[0]),
      ),
    redeliver,
  })
})

type EndpointRow = Omit<typeof WithSecretFromRow.Encoded, "id"> & {
  readonly id: string
  readonly org_id: string
  readonly previous_secret: string | null
}

/**
 * The endpoints in memory, read through the same row schemas. Nothing is delivered from memory
 * (the dispatcher needs PostgreSQL), so there are no deliveries to list or redeliver.
 */
const makeInMemory = Effect.gen(function* () {
  const table = yield* makeTable<EndpointRow>()
  const decode = Schema.decode(EndpointFromRow)
  const decodeSome = decodeFound(EndpointFromRow)
  const withSecret = Schema.decode(WithSecretFromRow)
  return repository(
    {
      insert: (e: NewEndpoint) =>
        table
          .insert((at) => ({
            ...e,
            failing_since: null,
            previous_secret: null,
            previous_secret_expires_at: null,
            created_at: at,
            updated_at: at,
          }))
          .pipe(Effect.flatMap(withSecret)),
      list: (orgId: string) =>
        Effect.flatMap(table.rows, (rows) =>
          Effect.forEach(rows.filter((row) => row.org_id === orgId).reverse(), (row) => decode(row)),
        ),
      find: (key: OrgKey) => Effect.flatMap(table.find(owned(key)), decodeSome),
      update: (key: OrgKey, change: (endpoint: WebhookEndpoint) => EndpointColumns) =>
        table
          .update(owned(key), (row, at) =>
            Effect.map(decode(row), (endpoint) => {
              const next = change(endpoint)
              const enabling = next.enabled && !row.enabled
              return { ...row, ...next, failing_since: enabling ? null : row.failing_since, updated_at: at }
            }),
          )
          .pipe(Effect.flatMap(decodeSome)),
      remove: (key: OrgKey) =>
        Effect.flatMap(table.find(owned(key)), (row) =>
          Option.isNone(row) ? Effect.succeed(false) : Effect.as(table.delete(owned(key)), true),
        ),
      rotate: (r: Rotation) =>
        table
          .update(owned(r), (row, at) =>
            Effect.succeed({
              ...row,
              previous_secret: row.secret,
              previous_secret_expires_at: new Date(at.getTime() + r.overlapSeconds * 1000),
              secret: r.secret,
              updated_at: at,
            }),
          )
          .pipe(Effect.flatMap(decodeFound(WithSecretFromRow))),
      deliveries: (_page: Page) =>
        Effect.succeed({ deliveries: [] as Array<typeof DeliveryFromRow.Type>, hasMore: false }),
      delivery: (_endpointId: string, _id: string) =>
        Effect.succeed(Option.none<typeof DeliveryFromRow.Type>()),
      redeliver: (_key: DeliveryKey) => Effect.succeed(false),
    },
    Effect.orDie,
  )
})

export class EndpointsRepo extends RepositoryTag<EndpointsRepo>()(
  "Parley/WebhookEndpointsRepo",
  make,
  makeInMemory,
) {}
