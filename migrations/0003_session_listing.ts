import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * GET /sessions pages newest first by (created_at, id) and filters by agent: both orders are index
 * scans that stop after a page, at any depth (the cursor is an index condition). The first replaces
 * 0001's (org_id, created_at DESC), which it covers.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE INDEX sessions_org_created_id_idx ON sessions (org_id, created_at DESC, id DESC)`
  yield* sql`
    CREATE INDEX sessions_org_agent_created_id_idx ON sessions (org_id, agent_id, created_at DESC, id DESC)`
  yield* sql`DROP INDEX sessions_org_created_idx`
})
