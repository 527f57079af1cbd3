import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE organizations (
      id uuid PRIMARY KEY,
      name text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`
    CREATE TABLE api_keys (
      id uuid PRIMARY KEY,
      org_id uuid NOT NULL REFERENCES organizations (id),
      name text,
      prefix text NOT NULL,
      key_hash text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz
    )`
  yield* sql`CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at DESC)`
  yield* sql`
    CREATE TABLE agents (
      id uuid PRIMARY KEY,
      org_id uuid NOT NULL REFERENCES organizations (id),
      name text NOT NULL,
      instructions text NOT NULL,
      language text NOT NULL,
      purpose text,
      questions jsonb NOT NULL DEFAULT '[]',
      behaviors jsonb NOT NULL DEFAULT '{}',
      output_schema jsonb NOT NULL DEFAULT '{}',
      output_schema_strict jsonb,
      extraction_model text,
      voice jsonb,
      metadata jsonb NOT NULL DEFAULT '{}',
      system_instruction text NOT NULL,
      is_active boolean NOT NULL DEFAULT true,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`
  yield* sql`CREATE INDEX agents_org_created_idx ON agents (org_id, created_at DESC, id DESC)`
  yield* sql`
    CREATE TABLE sessions (
      id uuid PRIMARY KEY,
      org_id uuid NOT NULL REFERENCES organizations (id),
      agent_id uuid NOT NULL REFERENCES agents (id),
      status text NOT NULL CHECK (status IN ('active', 'completing', 'completed', 'failed', 'expired')),
      participant jsonb NOT NULL,
      context jsonb,
      system_instruction text NOT NULL,
      transcript jsonb,
      results jsonb,
      extraction_warnings jsonb NOT NULL DEFAULT '[]',
      duration_seconds integer,
      max_duration_seconds integer,
      error_log jsonb NOT NULL DEFAULT '[]',
      metadata jsonb NOT NULL DEFAULT '{}',
      expires_at timestamptz NOT NULL,
      claimed_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      completed_at timestamptz
    )`
  yield* sql`CREATE INDEX sessions_org_created_idx ON sessions (org_id, created_at DESC)`
  yield* sql`CREATE INDEX sessions_open_idx ON sessions (status, expires_at) WHERE status IN ('active', 'completing')`
  yield* sql`
    CREATE TABLE webhook_events (
      event_id text PRIMARY KEY,
      event text NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX webhook_events_received_idx ON webhook_events (received_at)`
})
