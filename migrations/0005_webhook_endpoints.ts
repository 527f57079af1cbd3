import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Outbound webhook endpoints of an organization (`webhook_events` holds the inbound LiveKit ids).
  yield* sql`
    CREATE TABLE webhook_endpoints (
      id uuid PRIMARY KEY,
      org_id uuid NOT NULL REFERENCES organizations (id),
      url text NOT NULL,
      description text,
      enabled_events text[] NOT NULL,
      enabled boolean NOT NULL DEFAULT true,
      disabled_reason text,
      secret text NOT NULL,
      previous_secret text,
      previous_secret_expires_at timestamptz,
      failing_since timestamptz,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`
  yield* sql`CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id, created_at DESC)`
  // The outbox: one row per session change that some endpoint subscribed to, written in the
  // transaction of the change; `body` is the exact JSON sent on every attempt.
  yield* sql`
    CREATE TABLE outbound_events (
      id text PRIMARY KEY,
      org_id uuid NOT NULL REFERENCES organizations (id),
      session_id uuid NOT NULL,
      type text NOT NULL,
      body text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`
  // One row per (event, endpoint); `seq` orders a session's events on an endpoint.
  yield* sql`
    CREATE TABLE webhook_deliveries (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      seq bigserial NOT NULL,
      endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
      event_id text NOT NULL REFERENCES outbound_events (id),
      session_id uuid NOT NULL,
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      retry_from timestamptz NOT NULL DEFAULT clock_timestamp(),
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      delivered_at timestamptz
    )`
  yield* sql`CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'`
  yield* sql`
    CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, session_id, seq)
    WHERE status = 'pending'`
  yield* sql`CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, seq DESC)`
  // for pruning: finished deliveries by age, and the events no delivery refers to any more
  yield* sql`CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id)`
  yield* sql`CREATE INDEX outbound_events_created_idx ON outbound_events (created_at)`
  yield* sql`
    CREATE TABLE webhook_delivery_attempts (
      delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
      attempt integer NOT NULL,
      attempted_at timestamptz NOT NULL,
      status_code integer,
      latency_ms integer NOT NULL,
      error text,
      PRIMARY KEY (delivery_id, attempt)
    )`
})
