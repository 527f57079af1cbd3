import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // One row per (organization, Idempotency-Key): the request it was first used with (method, path,
  // digest of the body), who is running it (a lease, renewed while it runs), and once it has
  // finished, the response replayed to every retry until the row expires.
  yield* sql`
    CREATE TABLE idempotency_keys (
      org_id uuid NOT NULL REFERENCES organizations (id),
      key text NOT NULL,
      method text NOT NULL,
      path text NOT NULL,
      body_hash text NOT NULL,
      lease_token uuid NOT NULL,
      locked_until timestamptz NOT NULL,
      status integer,
      content_type text,
      headers jsonb,
      body bytea,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (org_id, key)
    )`
  yield* sql`CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at)`
})
