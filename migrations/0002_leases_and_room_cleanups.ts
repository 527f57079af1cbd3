import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // A completion's lease is renewed while its extraction runs; a stale one is taken over.
  yield* sql`ALTER TABLE sessions ADD COLUMN lease_renewed_at timestamptz`
  // LiveKit rooms whose compensating delete failed or is uncertain, retried by the sweeper.
  yield* sql`
    CREATE TABLE room_cleanups (
      room text PRIMARY KEY,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      last_error text,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX room_cleanups_due_idx ON room_cleanups (next_attempt_at)`
})
