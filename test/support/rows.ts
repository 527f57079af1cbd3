/** Rows read straight from the test database, decoded by the repositories' own row schemas. */
import { SqlClient, SqlSchema, type Statement } from "@effect/sql"
import { Effect, Schema } from "effect"
import { AgentFromRow } from "../../src/Agents/Repo.ts"
import type { TestServer } from "./server.ts"

/** What a statement returns, decoded by `result`. */
export const query = <A, I>(
  s: TestServer,
  result: Schema.Schema<A, I>,
  statement: (sql: SqlClient.SqlClient) => Statement.Statement<unknown>,
) =>
  s.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      SqlSchema.findAll({ Request: Schema.Void, Result: result, execute: () => statement(sql) })(undefined),
    ),
  )

const Count = Schema.Struct({ n: Schema.Int })

/** How many rows `statement` (a `SELECT count(*)::int AS n ...`) counts. */
export const count = (s: TestServer, statement: (sql: SqlClient.SqlClient) => Statement.Statement<unknown>) =>
  query(s, Count, statement).then((rows) => rows[0].n)

const StoredAgent = Schema.encodedSchema(Schema.Struct({ ...AgentFromRow.fields, org_id: Schema.String }))

/** The stored row of an agent as the driver returns it (timestamps as Dates). */
export const agentRow = (s: TestServer, id: string) =>
  query(s, StoredAgent, (sql) => sql`SELECT * FROM agents WHERE id = ${id}`).then((rows) => rows[0])

/** Agents of an organization (for "nothing was written"). */
export const agentCount = (s: TestServer, orgId: string) =>
  count(s, (sql) => sql`SELECT count(*)::int AS n FROM agents WHERE org_id = ${orgId}`)
