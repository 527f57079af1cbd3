/** GET /admin/v1/orgs: every organization, newest first, as the CLI's `org list` (SPEC §3 list shape). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Option } from "effect"
import { ADMIN_TOKEN, startServer, type TestServer } from "./support/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server.dispose())

const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` }

interface Org {
  readonly org_id: string
  readonly name: string
  readonly created_at: number
}

const createOrg = async (name: string): Promise<Org> => {
  const res = await server.fetchRaw("/admin/v1/orgs", {
    method: "POST",
    headers: ADMIN,
    body: JSON.stringify({ name }),
  })
  expect(res.status).toBe(201)
  return ((await res.json()) as { data: Org }).data
}

describe("GET /admin/v1/orgs", () => {
  test("lists every organization, newest first, in the list envelope", async () => {
    const older = await createOrg("Older Org")
    const newer = await createOrg("Newer Org")
    const res = await server.fetchRaw("/admin/v1/orgs", { headers: ADMIN })
    expect(res.status).toBe(200)
    const body = (await res.json()) as Record<string, unknown> & {
      data: { object: string; data: Array<Org>; has_more: boolean; total_count: number }
    }
    expect(body).toMatchObject({ object: "list", status: "completed", id: res.headers.get("x-request-id") })
    expect(Object.keys(body.data).sort()).toEqual(["data", "has_more", "object", "total_count"])
    expect(body.data).toMatchObject({ object: "list", has_more: false, total_count: body.data.data.length })
    const ids = body.data.data.map((o) => o.org_id)
    expect(body.data.data[ids.indexOf(older.org_id)]).toEqual(older)
    expect(body.data.data[ids.indexOf(newer.org_id)]).toEqual(newer)
    expect(ids.indexOf(newer.org_id)).toBeLessThan(ids.indexOf(older.org_id))
    const times = body.data.data.map((o) => o.created_at)
    expect(times).toEqual([...times].sort((a, b) => b - a))

    // the typed client decodes the same list
    const client = await server.client(ADMIN_TOKEN)
    const typed = await Effect.runPromise(client.admin.listOrgs())
    expect(typed.data.data.map((o) => o.org_id)).toContain(newer.org_id)
  })

  test("needs the admin token; absent while ADMIN_TOKEN is unset", async () => {
    const missing = await server.fetchRaw("/admin/v1/orgs")
    expect(missing.status).toBe(401)
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe(
      "missing_authorization_header",
    )
    const { apiKey } = await server.newTenant()
    const asKey = await server.fetchRaw("/admin/v1/orgs", { apiKey })
    expect(asKey.status).toBe(401)

    const plain = await startServer({ adminToken: Option.none() })
    try {
      const res = await plain.fetchRaw("/admin/v1/orgs", { headers: ADMIN })
      expect(res.status).toBe(404)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("route_not_found")
    } finally {
      await plain.dispose()
    }
  })
})
