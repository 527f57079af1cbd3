import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // A room cleanup scheduled by a session's call cap (its due time is next_attempt_at): the session
  // whose metadata records when the room was deleted. NULL for the compensation of a failed start.
  yield* sql`ALTER TABLE room_cleanups ADD COLUMN session_id uuid REFERENCES sessions (id)`
})
