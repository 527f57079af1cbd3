/**
 * GET /sessions at a million rows: fills a throwaway database (on the embedded PostgreSQL the tests
 * use, deleted when this process ends) with 1,000,000 sessions via generate_series, then runs
 * EXPLAIN (ANALYZE, BUFFERS) on the statement the route runs (`pageStatement`) for first and deep
 * cursor pages, with and without filters, and prints each plan and its median execution time. For
 * contrast: the status filters without the status index, and the deep page fetched by OFFSET, as
 * offset pagination would.
 * Run: bun bench/list-sessions.ts (part of npm run bench)
 */
import { SqlClient } from "@effect/sql"
import { ManagedRuntime } from "effect"
import pg from "pg"
import { type PageQuery, pageStatement } from "../src/Sessions/ListQuery.ts"
import { freshDatabaseUrl, sqlLayerFor } from "../test/support/db.ts"

const ROWS = 1_000_000
/** The organization listed holds most rows; three others share the rest. */
const MAIN_ROWS = 700_000
const AGENTS = 20
const RUNS = 5

const url = await freshDatabaseUrl()
// Built once: it applies the migrations (indexes included) and compiles the route's statements.
const runtime = ManagedRuntime.make(sqlLayerFor(url))
const sql = await runtime.runPromise(SqlClient.SqlClient)
// The fill and the plans run on a plain connection, free of the server's statement deadlines.
const db = new pg.Client({ connectionString: url })
await db.connect()

const main = crypto.randomUUID()
const others = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
const agents = Array.from({ length: AGENTS }, () => crypto.randomUUID())
/** The other organizations' sessions belong to one agent each. */
const otherAgents = others.map(() => crypto.randomUUID())

const t0 = performance.now()
await db.query(`INSERT INTO organizations (id, name) SELECT id, 'bench' FROM unnest($1::uuid[]) AS id`, [
  [main, ...others],
])
await db.query(
  `INSERT INTO agents (id, org_id, name, instructions, language, system_instruction)
   SELECT id, org, 'bench', 'bench', 'English', 'bench' FROM unnest($1::uuid[], $2::uuid[]) AS a (id, org)`,
  [
    [...agents, ...otherAgents],
    [...agents.map(() => main), ...others],
  ],
)
/**
 * One session every ~7.8 s going back ~63 days, timestamps truncated to the minute so that ~8 share
 * each one (ties are broken by id):
 * 80 % completed, 14.9 % expired, 5 % active, 0.1 % failed; agents round-robin; a small transcript each.
 */
const fill = (org: string, agentIds: ReadonlyArray<string>, from: number, count: number) =>
  db.query(
    `INSERT INTO sessions (id, org_id, agent_id, status, participant, system_instruction, transcript,
       expires_at, created_at, updated_at)
     SELECT gen_random_uuid(), $1, ($2::uuid[])[1 + g % cardinality($2::uuid[])],
       CASE WHEN g % 1000 < 800 THEN 'completed' WHEN g % 1000 < 949 THEN 'expired'
            WHEN g % 1000 < 999 THEN 'active' ELSE 'failed' END,
       '{"identity":"bench"}', 'bench',
       '[{"role":"user","text":"About 25 seats, please."},{"role":"agent","text":"Noted."}]',
       ts + interval '10 minutes', ts, ts
     FROM generate_series($3::int, $3::int + $4::int - 1) AS g,
       LATERAL (SELECT date_trunc('minute', now() - make_interval(secs => g * 7.77)) AS ts) AS t`,
    [org, agentIds, from, count],
  )
await fill(main, agents, 0, MAIN_ROWS)
const rest = (ROWS - MAIN_ROWS) / others.length
for (const [i, org] of others.entries()) await fill(org, [otherAgents[i]], 0, rest)
await db.query("VACUUM ANALYZE sessions")
const { rows: counted } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM sessions")
console.log(
  `filled ${counted[0].n.toLocaleString("en")} sessions (${MAIN_ROWS.toLocaleString("en")} in the listed organization) ` +
    `in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
)

/** The session at `position` (0 = newest) of the organization's list, as a cursor. */
const sessionAt = async (position: number, where = "TRUE", params: ReadonlyArray<unknown> = []) => {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id::text FROM sessions WHERE org_id = $1 AND ${where}
     ORDER BY created_at DESC, id DESC OFFSET ${position} LIMIT 1`,
    [main, ...params],
  )
  return rows[0].id
}
const agent = agents[7]
const deep = await sessionAt(500_000)
const deepOfAgent = await sessionAt(30_000, "agent_id = $2", [agent])
const deepFailed = await sessionAt(500, "status = 'failed'")

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

interface Plan {
  readonly Plan: Record<string, unknown>
  readonly "Execution Time": number
}

/** EXPLAIN ANALYZE of the statement: its text plan once, the median execution time of RUNS. */
const explain = async (name: string, text: string, params: ReadonlyArray<unknown>) => {
  await db.query(text, params as Array<unknown>) // warm the cache
  const times: Array<number> = []
  for (let i = 0; i < RUNS; i++) {
    const { rows } = await db.query<{ "QUERY PLAN": ReadonlyArray<Plan> }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`,
      params as Array<unknown>,
    )
    times.push(rows[0]["QUERY PLAN"][0]["Execution Time"])
  }
  const { rows } = await db.query<{ "QUERY PLAN": string }>(
    `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${text}`,
    params as Array<unknown>,
  )
  console.log(`\n== ${name}: median ${median(times).toFixed(3)} ms (of ${RUNS})`)
  for (const row of rows) console.log(`   ${row["QUERY PLAN"]}`)
  return median(times)
}

const page = (name: string, q: Omit<PageQuery, "orgId" | "limit" | "transcripts">) => {
  const [text, params] = pageStatement(sql, { orgId: main, limit: 20, transcripts: false, ...q }).compile()
  return explain(name, text, params)
}

const results: Array<readonly [string, number]> = []
const measure = async (name: string, q: Omit<PageQuery, "orgId" | "limit" | "transcripts">) => {
  results.push([name, await page(name, q)])
}
await measure("first page", {})
await measure("deep page (cursor at 500,000)", { startingAfter: deep })
await measure("first page, agent_id", { agentId: agent })
await measure("deep page, agent_id (cursor at 30,000 of the agent)", {
  agentId: agent,
  startingAfter: deepOfAgent,
})
const failedFirst = { statuses: ["failed"] } as const
const failedDeep = { statuses: ["failed"], startingAfter: deepFailed } as const
const someStatuses = { statuses: ["active", "failed"] } as const
await measure("first page, status=failed (0.1 %)", failedFirst)
await measure("deep page, status=failed (cursor at 500 of them)", failedDeep)
await measure("first page, status=active&status=failed (5.1 %)", someStatuses)
await measure("first page, status=failed&status=completing (0.1 % and none)", {
  statuses: ["failed", "completing"],
})
const day = Date.now() - 30 * 86_400_000
await measure("one day 30 days back (created_after/created_before)", {
  createdAfter: new Date(day),
  createdBefore: new Date(day + 86_400_000),
})
await measure("everything at once: agent, statuses, window, deep cursor", {
  agentId: agent,
  statuses: ["completed", "expired"],
  createdAfter: new Date(Date.now() - 60 * 86_400_000),
  createdBefore: new Date(Date.now() - 10 * 86_400_000),
  startingAfter: deepOfAgent,
})
// For contrast: the status filters without the status index (dropped in a transaction rolled back).
await db.query("BEGIN")
await db.query("DROP INDEX sessions_org_status_created_id_idx")
const withoutStatusIndex = [
  [
    "without the status index: first page, status=failed",
    await page("first page, status=failed", failedFirst),
  ],
  ["without the status index: deep page, status=failed", await page("deep page, status=failed", failedDeep)],
  ["without the status index: status=active&status=failed", await page("status=active&failed", someStatuses)],
] as const
await db.query("ROLLBACK")
const offset = await explain(
  "for contrast: the deep page by OFFSET 500000 (offset pagination)",
  `SELECT id FROM sessions WHERE org_id = $1 ORDER BY created_at DESC, id DESC OFFSET 500000 LIMIT 21`,
  [main],
)

console.log("\nsummary (median execution time, ms)")
for (const [name, ms] of results) console.log(`  ${ms.toFixed(3).padStart(9)}  ${name}`)
for (const [name, ms] of withoutStatusIndex) console.log(`  ${ms.toFixed(3).padStart(9)}  ${name}`)
console.log(`  ${offset.toFixed(3).padStart(9)}  for contrast: the deep page by OFFSET 500000`)

await db.end()
await runtime.dispose()
process.exit(0)
