import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * GET /sessions pages newest first by (created_at, id), optionally of one agent or in one status:
 * each is an index scan that stops after a page, at any depth (the cursor is an index condition).
 * Without the status index a rare status would be found by filtering the organization's whole list.
 * The first replaces 0001's (org_id, created_at DESC), which it covers.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE INDEX sessions_org_created_id_idx ON sessions (org_id, created_at DESC, id DESC)`
  yield* sql`
    CREATE INDEX sessions_org_agent_created_id_idx ON sessions (org_id, agent_id, created_at DESC, id DESC)`
  yield* sql`
    CREATE INDEX sessions_org_status_created_id_idx ON sessions (org_id, status, created_at DESC, id DESC)`
  yield* sql`DROP INDEX sessions_org_created_idx`
})
