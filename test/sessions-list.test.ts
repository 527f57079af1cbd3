/**
 * GET /api/v1/voice/sessions over HTTP with the typed client (`parley/client`): filters, cursor pages
 * (equal timestamps included), organization scoping, include=transcript, validation errors, and the
 * query plan (the indexes of migration 0003 serve every order and filter, with no sort).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { OpenApi } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Api } from "../src/Api.ts"
import type { AgentId, SessionId } from "../src/Domain/Ids.ts"
import type { SessionStatus } from "../src/Domain/Session.ts"
import { type PageQuery, pageStatement } from "../src/Sessions/ListQuery.ts"
import { query } from "./support/rows.ts"
import { failure, startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  call,
  completeSession,
  createAgent,
  data,
  error,
  getSession,
  type Json,
  startSession,
  TRANSCRIPT,
  UNKNOWN_ID,
} from "./support/sessions.ts"

const LIST = "/api/v1/voice/sessions"
let s: TestServer

beforeAll(async () => {
  s = await startServer()
})
afterAll(async () => {
  await s.dispose()
})

interface Seed {
  readonly agentId: string
  readonly status: SessionStatus
  readonly createdAt: Date
}

/** Session rows written straight to the table (timestamps chosen by the test); their ids. */
const seed = (orgId: string, rows: ReadonlyArray<Seed>) =>
  s.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => {
      const values = rows.map((r) => ({
        id: crypto.randomUUID(),
        org_id: orgId,
        agent_id: r.agentId,
        status: r.status,
        participant: JSON.stringify({ identity: "seeded" }),
        system_instruction: "seeded",
        expires_at: new Date(r.createdAt.getTime() + 3_600_000),
        created_at: r.createdAt,
        updated_at: r.createdAt,
      }))
      return Effect.as(
        sql`INSERT INTO sessions ${sql.insert(values)}`,
        values.map((v) => v.id),
      )
    }),
  )

/** The organization's session ids in list order, as the database orders them. */
const expectedOrder = (orgId: string, where: (sql: SqlClient.SqlClient) => unknown = () => undefined) =>
  query(s, Schema.Struct({ id: Schema.String }), (sql) => {
    const extra = where(sql)
    return sql`SELECT id::text AS id FROM sessions WHERE org_id = ${orgId} ${extra ? sql`AND ${extra as never}` : sql``}
      ORDER BY created_at DESC, id DESC`
  }).then((rows) => rows.map((r) => r.id))

type ListParams = Parameters<Awaited<ReturnType<TestServer["client"]>>["sessions"]["list"]>[0]["urlParams"]

/** Every page of a listing through the typed client; the ids in the order received, and the page sizes. */
const allPages = async (apiKey: string, params: ListParams) => {
  const client = await s.client(apiKey)
  const ids: Array<string> = []
  const sizes: Array<number> = []
  let startingAfter: SessionId | undefined
  for (;;) {
    const page = await Effect.runPromise(
      client.sessions.list({
        urlParams: { ...params, ...(startingAfter ? { starting_after: startingAfter } : {}) },
      }),
    )
    expect(page.object).toBe("list")
    expect(page.data.object).toBe("list")
    ids.push(...page.data.data.map((item) => item.session_id))
    sizes.push(page.data.data.length)
    if (!page.data.has_more) return { ids, sizes }
    startingAfter = page.data.data.at(-1)?.session_id
  }
}

const BASE = Date.parse("2026-11-01T12:00:00Z")
const at = (seconds: number) => new Date(BASE + seconds * 1000)

describe("GET /sessions", () => {
  test("the organization's own sessions, newest first, as GET /sessions/:id returns them, without transcripts", async () => {
    const { apiKey, agentId, sessionId: first } = await activeSession(s)
    const second = data(
      await startSession(s, apiKey, { agent_id: agentId, participant: { identity: "caller-2" } }),
    ).session_id as string
    expect((await completeSession(s, apiKey, first, { transcript: TRANSCRIPT })).status).toBe(200)
    // another organization's sessions are never listed
    const other = await activeSession(s)

    const reply = await call(s, apiKey, "GET", LIST)
    expect(reply.status).toBe(200)
    expect(reply.body).toMatchObject({ object: "list", status: "completed" })
    expect(reply.body.id).toBe(reply.headers.get("x-request-id") as string)
    const list = data(reply)
    expect(Object.keys(list).sort()).toEqual(["data", "has_more", "object"])
    expect(list.has_more).toBe(false)
    const items = list.data as Array<Json>
    expect(items.map((i) => i.session_id)).toEqual([second, first])
    expect(items.map((i) => i.session_id)).not.toContain(other.sessionId)
    for (const item of items) {
      const { transcript, ...got } = data(await getSession(s, apiKey, item.session_id as string))
      expect(item).toEqual(got)
      expect("transcript" in item).toBe(false)
      expect(transcript === null || Array.isArray(transcript)).toBe(true)
    }

    // include=transcript: the items are exactly what GET returns
    const withTranscripts = data(await call(s, apiKey, "GET", `${LIST}?include=transcript`))
      .data as Array<Json>
    expect(withTranscripts[1]).toEqual(data(await getSession(s, apiKey, first)))
    expect(withTranscripts[1].transcript).toEqual(TRANSCRIPT)
    expect(withTranscripts[0].transcript).toBeNull()

    // the other organization sees only its own
    const theirs = data(await call(s, other.apiKey, "GET", LIST)).data as Array<Json>
    expect(theirs.map((i) => i.session_id)).toEqual([other.sessionId])
  })

  test("pages follow the cursor without duplicates or gaps, equal timestamps included", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    // 23 sessions on 5 timestamps: runs of equal created_at that pages of 4 cut through
    const times = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]
    await seed(
      orgId,
      times.map((t) => ({ agentId, status: "active", createdAt: at(t) })),
    )
    const expected = await expectedOrder(orgId)
    expect(expected).toHaveLength(23)

    const { ids, sizes } = await allPages(apiKey, { limit: 4 })
    expect(ids).toEqual(expected)
    expect(sizes).toEqual([4, 4, 4, 4, 4, 3])
    // the default page is 20
    expect(await allPages(apiKey, {}).then((r) => r.sizes)).toEqual([20, 3])
    // a page that ends exactly at the last session says so
    expect(await allPages(apiKey, { limit: 23 }).then((r) => r.sizes)).toEqual([23])
    // the last page's cursor gives an empty last page
    const client = await s.client(apiKey)
    const past = await Effect.runPromise(
      client.sessions.list({ urlParams: { starting_after: expected[22] as SessionId } }),
    )
    expect(past.data).toEqual({ object: "list", data: [], has_more: false })
  })

  test("filters: agent, repeatable status, created_after (inclusive) and created_before (exclusive)", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const [a1, a2] = [await createAgent(s, apiKey), await createAgent(s, apiKey)]
    const statuses: ReadonlyArray<SessionStatus> = ["active", "completed", "failed", "expired", "completing"]
    await seed(
      orgId,
      Array.from({ length: 30 }, (_, i) => ({
        agentId: i % 3 === 0 ? a2 : a1,
        status: statuses[i % statuses.length],
        createdAt: at(Math.floor(i / 2)),
      })),
    )
    const a2Ids = await expectedOrder(orgId, (sql) => sql`agent_id = ${a2}`)
    expect((await allPages(apiKey, { agent_id: a2 as AgentId, limit: 3 })).ids).toEqual(a2Ids)

    const done = await expectedOrder(orgId, (sql) => sql`status IN ('completed', 'failed')`)
    expect((await allPages(apiKey, { status: ["completed", "failed"], limit: 2 })).ids).toEqual(done)
    // the same on the wire: the parameter repeated, or given once
    const raw = data(await call(s, apiKey, "GET", `${LIST}?status=completed&status=failed&limit=100`))
    expect((raw.data as Array<Json>).map((i) => i.session_id)).toEqual(done)
    const once = data(await call(s, apiKey, "GET", `${LIST}?status=expired&limit=100`)).data as Array<Json>
    expect(once.length).toBe(6)
    expect(once.every((i) => i.status === "expired")).toBe(true)

    // [at(3), at(7)): the sessions of seconds 3 to 6, both ends exact timestamps of sessions
    const window = await expectedOrder(orgId, (sql) => sql`created_at >= ${at(3)} AND created_at < ${at(7)}`)
    expect(window).toHaveLength(8)
    const windowed = await allPages(apiKey, { created_after: at(3), created_before: at(7), limit: 3 })
    expect(windowed.ids).toEqual(window)
    // with offsets on the wire: 13:00:03+01:00 is 12:00:03Z
    const offset = data(
      await call(
        s,
        apiKey,
        "GET",
        `${LIST}?created_after=${encodeURIComponent("2026-11-01T13:00:03+01:00")}&created_before=2026-11-01T12:00:07.000Z&limit=100`,
      ),
    )
    expect((offset.data as Array<Json>).map((i) => i.session_id)).toEqual(window)

    // all filters at once, paged
    const combined = await expectedOrder(
      orgId,
      (sql) => sql`agent_id = ${a1} AND status IN ('active', 'expired') AND created_at >= ${at(2)}`,
    )
    expect(combined.length).toBeGreaterThan(2)
    const paged = await allPages(apiKey, {
      agent_id: a1 as AgentId,
      status: ["active", "expired"],
      created_after: at(2),
      limit: 2,
    })
    expect(paged.ids).toEqual(combined)
  })

  test("bad filters are 400 invalid_request naming the parameter; nothing else is answered", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const other = await activeSession(s)
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["status=done", "status[0]"],
      ["status=active&status=done", "status[1]"],
      ["created_after=yesterday", "created_after"],
      ["created_after=2026-11-01", "created_after"],
      ["created_after=2026-11-01T12:00:00", "created_after"],
      ["created_before=2026-02-30T00:00:00Z", "created_before"],
      ["created_before=2026-11-01T24:00:00Z", "created_before"],
      ["created_after=2026-11-01T12:00:00Z&created_after=2026-11-02T12:00:00Z", "created_after"],
      ["limit=0", "limit"],
      ["limit=101", "limit"],
      ["limit=ten", "limit"],
      ["agent_id=nope", "agent_id"],
      ["starting_after=nope", "starting_after"],
      [`starting_after=${UNKNOWN_ID}`, "starting_after"],
      // another organization's session is no cursor here
      [`starting_after=${other.sessionId}`, "starting_after"],
      ["include=transcripts", "include[0]"],
      ["statuses=active", "statuses"],
    ]
    for (const [q, param] of cases) {
      const reply = await call(s, apiKey, "GET", `${LIST}?${q}`)
      expect({ q, status: reply.status }).toEqual({ q, status: 400 })
      expect({ q, ...error(reply) }).toMatchObject({
        q,
        type: "invalid_request_error",
        code: "invalid_request",
        param,
        request_id: reply.headers.get("x-request-id") as string,
      })
      expect(JSON.stringify(error(reply))).not.toMatch(/Schema|Expected \{|SELECT/)
    }
    const reply = await call(s, apiKey, "GET", `${LIST}?status=done`)
    expect(error(reply).message).toBe(
      'Invalid request: status[0]: must be one of "active", "completing", "completed", "failed", "expired"; got "done"',
    )
    // the typed client decodes the failure into its class
    const client = await s.client(apiKey)
    const e = await failure(
      client.sessions.list({ urlParams: { starting_after: other.sessionId as SessionId } }),
    )
    expect(e._tag).toBe("InvalidRequest")
    expect(e).toMatchObject({ param: "starting_after" })
    // own session as the cursor is fine
    expect((await call(s, apiKey, "GET", `${LIST}?starting_after=${sessionId}`)).status).toBe(200)
  })

  test("is documented: its query parameters, typed and described, and its list", () => {
    const spec = OpenApi.fromApi(Api) as unknown as {
      paths: Record<string, Record<string, { operationId: string; parameters: Array<Json> }>>
    }
    const op = spec.paths[LIST].get
    expect(op.operationId).toBe("sessions.list")
    const params = Object.fromEntries(op.parameters.map((p) => [p.name, p]))
    expect(Object.keys(params)).toEqual([
      "agent_id",
      "status",
      "created_after",
      "created_before",
      "starting_after",
      "limit",
      "include",
    ])
    for (const p of op.parameters) expect(p).toMatchObject({ in: "query", required: false })
    for (const p of op.parameters) expect(typeof p.description).toBe("string")
    expect(params.status.schema).toMatchObject({
      type: "array",
      items: { enum: ["active", "completing", "completed", "failed", "expired"] },
    })
    expect(params.created_after.schema).toMatchObject({ type: "string", format: "date-time" })
    expect(params.starting_after.schema).toMatchObject({ type: "string", format: "uuid" })
    expect(params.limit.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 100 })
  })

  test("needs an API key", async () => {
    const reply = await call(s, undefined, "GET", LIST)
    expect(reply.status).toBe(401)
    expect(error(reply).code).toBe("missing_authorization_header")
  })
})

describe("query plan", () => {
  const Plan = Schema.Struct({ "QUERY PLAN": Schema.Unknown })
  /**
   * The plan's node types and index names, flattened, without the cursor's own lookup (an InitPlan);
   * sequential and bitmap scans and sorts are priced out, as they are on a big table (the bench shows
   * the planner choosing these plans by itself at a million rows).
   */
  const planOf = (q: PageQuery) =>
    s
      .run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`SET LOCAL enable_seqscan = off`
              yield* sql`SET LOCAL enable_bitmapscan = off`
              // priced out, not forbidden: a plan that needs a sort still shows one
              yield* sql`SET LOCAL enable_sort = off`
              return yield* Effect.flatMap(
                sql`EXPLAIN (FORMAT JSON) ${pageStatement(sql, q)}`,
                Schema.decodeUnknown(Schema.Array(Plan)),
              )
            }),
          ),
        ),
      )
      .then((rows) => {
        const nodes: Array<string> = []
        const visit = (node: Json) => {
          if (node["Parent Relationship"] === "InitPlan") return
          nodes.push(`${node["Node Type"]}${node["Index Name"] ? ` ${node["Index Name"]}` : ""}`)
          for (const child of (node.Plans as Array<Json> | undefined) ?? []) visit(child)
        }
        visit(((rows[0]["QUERY PLAN"] as Array<Json>)[0] as Json).Plan as Json)
        return nodes
      })

  test("every listing is an index scan in list order: no sort, at any depth, with any filter", async () => {
    const { orgId, agentId, sessionId } = await activeSession(s)
    const base = { orgId, limit: 20, transcripts: false }
    const [byOrg, byAgent, byStatus] = [
      "sessions_org_created_id_idx",
      "sessions_org_agent_created_id_idx",
      "sessions_org_status_created_id_idx",
    ]
    const cases: ReadonlyArray<readonly [Partial<PageQuery>, string]> = [
      [{}, byOrg],
      [{ startingAfter: sessionId }, byOrg],
      [{ createdAfter: at(0), createdBefore: at(100) }, byOrg],
      [{ statuses: ["completed", "failed"], startingAfter: sessionId }, byOrg],
      [{ statuses: ["failed"] }, byStatus],
      [{ statuses: ["failed"], startingAfter: sessionId, createdBefore: at(100) }, byStatus],
      [{ agentId }, byAgent],
      [{ agentId, statuses: ["active", "expired"], startingAfter: sessionId, createdAfter: at(0) }, byAgent],
    ]
    for (const [filter, index] of cases) {
      const nodes = await planOf({ ...base, ...filter })
      expect({ filter, nodes }).toEqual({ filter, nodes: ["Limit", `Index Scan ${index}`] })
    }
  })
})
