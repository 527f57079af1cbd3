/** Authentication, tenancy and the admin API (SPEC §4). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { hashKey } from "../src/Auth/ApiKeys.ts"
import { InvalidApiKey, MissingAuthorizationHeader } from "../src/Domain/Errors.ts"
import { ADMIN_TOKEN, failure, startServer, type TestServer } from "./support/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server.dispose())

const AGENTS = "/api/v1/voice/agents"
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` }

interface Body {
  readonly id?: string
  readonly object?: string
  readonly status?: string
  readonly data: Record<string, unknown> & { readonly data?: Array<Record<string, unknown>> }
  readonly error: Record<string, unknown>
}

const call = async (
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: unknown } = {},
) => {
  const res = await server.fetchRaw(path, {
    method,
    headers: init.headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })
  const body = (await res.json()) as Body
  if (res.status >= 400) {
    expect(Object.keys(body)).toEqual(["error"])
    expect(body.error.request_id).toBe(res.headers.get("x-request-id") as string)
  }
  return { status: res.status, body }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

const sql = <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  server.run(Effect.flatMap(SqlClient.SqlClient, f) as Effect.Effect<A>)

describe("API key authentication", () => {
  test("no Authorization header → 401 missing_authorization_header", async () => {
    for (const headers of [{}, { authorization: "" }, { authorization: "   " }] as Array<
      Record<string, string>
    >) {
      const res = await call("GET", AGENTS, { headers })
      expect(res.status).toBe(401)
      expect(res.body.error).toMatchObject({
        type: "invalid_request_error", // as in the Pi API
        code: "missing_authorization_header",
      })
    }
  })

  test("a scheme other than Bearer → 401 invalid_authorization_scheme", async () => {
    const { apiKey } = await server.newTenant()
    for (const authorization of ["Basic dXNlcjpwYXNz", `Token ${apiKey}`, apiKey, `Bearer ${apiKey} extra`]) {
      const res = await call("GET", AGENTS, { headers: { authorization } })
      expect(res.status).toBe(401)
      expect(res.body.error).toMatchObject({
        type: "invalid_request_error", // as in the Pi API
        code: "invalid_authorization_scheme",
      })
      expect(res.body.error.message).toContain("Bearer")
    }
  })

  test("an empty bearer token → 401 missing_bearer_token, as in the Pi API", async () => {
    for (const authorization of ["Bearer", "Bearer ", "bearer    "]) {
      const res = await call("GET", AGENTS, { headers: { authorization } })
      expect(res.status).toBe(401)
      expect(res.body.error).toMatchObject({
        type: "invalid_request_error", // as in the Pi API
        code: "missing_bearer_token",
        message: "Bearer token is empty.",
      })
    }
  })

  test("a wrong or unknown key → 401 invalid_api_key", async () => {
    const { apiKey } = await server.newTenant()
    for (const token of [
      "wrong",
      `pk_live_${"x".repeat(40)}`,
      `${apiKey}x`,
      apiKey.slice(0, -1),
      apiKey.replace("pk_live_", "pk_test_"),
      ADMIN_TOKEN,
    ]) {
      const res = await call("GET", AGENTS, { headers: bearer(token) })
      expect(res.status).toBe(401)
      expect(res.body.error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" })
      expect(JSON.stringify(res.body)).not.toContain(token)
    }
  })

  test("the scheme is case-insensitive and extra blanks are tolerated", async () => {
    const { apiKey } = await server.newTenant()
    for (const authorization of [`bearer ${apiKey}`, `BEARER ${apiKey}`, `Bearer   ${apiKey}  `]) {
      const res = await call("GET", AGENTS, { headers: { authorization } })
      expect(res.status).toBe(200)
    }
  })

  test("authentication comes before body validation", async () => {
    const res = await call("POST", AGENTS, { body: { name: "" } })
    expect(res.status).toBe(401)
    expect(res.body.error.code).toBe("missing_authorization_header")
    const bad = await call("POST", AGENTS, { headers: bearer("nope"), body: { name: "" } })
    expect(bad.body.error.code).toBe("invalid_api_key")
  })

  test("every agent route requires a key", async () => {
    const id = crypto.randomUUID()
    for (const [method, path] of [
      ["GET", AGENTS],
      ["POST", AGENTS],
      ["GET", `${AGENTS}/${id}`],
      ["PATCH", `${AGENTS}/${id}`],
      ["DELETE", `${AGENTS}/${id}`],
      ["GET", "/api/v1/voice/voices"],
    ] as const) {
      const res = await call(method, path)
      expect(res.status).toBe(401)
      expect(res.body.error.code).toBe("missing_authorization_header")
    }
  })

  test("the typed client decodes auth failures", async () => {
    const anonymous = await server.client()
    expect(await failure(anonymous.agents.list({ urlParams: {} }))).toBeInstanceOf(MissingAuthorizationHeader)
    const wrong = await server.client("pk_live_nope")
    expect(await failure(wrong.agents.list({ urlParams: {} }))).toBeInstanceOf(InvalidApiKey)
  })

  test("a revoked key fails on the very next request; other keys of the org keep working", async () => {
    const { apiKey, keyId, orgId } = await server.newTenant()
    const second = await call("POST", `/admin/v1/orgs/${orgId}/api_keys`, { headers: ADMIN, body: {} })
    const otherKey = second.body.data.api_key as string
    expect((await call("GET", AGENTS, { headers: bearer(apiKey) })).status).toBe(200)

    const revoked = await call("DELETE", `/admin/v1/api_keys/${keyId}`, { headers: ADMIN })
    expect(revoked.status).toBe(200)

    const after = await call("GET", AGENTS, { headers: bearer(apiKey) })
    expect(after.status).toBe(401)
    expect(after.body.error.code).toBe("invalid_api_key")
    expect(
      (await call("POST", AGENTS, { headers: bearer(apiKey), body: { name: "x", instructions: "y" } }))
        .status,
    ).toBe(401)
    expect((await call("GET", AGENTS, { headers: bearer(otherKey) })).status).toBe(200)
  })

  test("keys are scoped to their organization, both ways", async () => {
    const a = await server.newTenant()
    const b = await server.newTenant()
    const created = await call("POST", AGENTS, {
      headers: bearer(a.apiKey),
      body: { name: "A", instructions: "x" },
    })
    const aAgent = created.body.data.agent_id as string
    const createdB = await call("POST", AGENTS, {
      headers: bearer(b.apiKey),
      body: { name: "B", instructions: "x" },
    })
    const bAgent = createdB.body.data.agent_id as string
    for (const [key, foreign] of [
      [a.apiKey, bAgent],
      [b.apiKey, aAgent],
    ]) {
      for (const method of ["GET", "PATCH", "DELETE"]) {
        const res = await call(method, `${AGENTS}/${foreign}`, {
          headers: bearer(key),
          body: method === "PATCH" ? { name: "mine now" } : undefined,
        })
        expect(res.status).toBe(404)
        expect(res.body.error.code).toBe("voice_agent_not_found")
      }
    }
    const rows = await sql(
      (s) => s<{ org_id: string; name: string; is_active: boolean }>`
      SELECT org_id, name, is_active FROM agents WHERE id IN (${aAgent}, ${bAgent}) ORDER BY name`,
    )
    expect(rows).toEqual([
      { org_id: a.orgId, name: "A", is_active: true },
      { org_id: b.orgId, name: "B", is_active: true },
    ])
  })
})

describe("admin API", () => {
  test("creates an organization (201) and stores it", async () => {
    const res = await call("POST", "/admin/v1/orgs", { headers: ADMIN, body: { name: "  Acme Inc  " } })
    expect(res.status).toBe(201)
    expect(res.body.object).toBe("organization")
    expect(res.body.status).toBe("completed")
    expect(Object.keys(res.body.data).sort()).toEqual(["created_at", "name", "org_id"])
    expect(res.body.data.name).toBe("Acme Inc")
    expect(Number.isInteger(res.body.data.created_at)).toBe(true)
    const orgId = res.body.data.org_id as string
    const rows = await sql((s) => s<{ name: string }>`SELECT name FROM organizations WHERE id = ${orgId}`)
    expect(rows).toEqual([{ name: "Acme Inc" }])
  })

  test("validates the organization payload", async () => {
    for (const [body, param] of [
      [{ name: "" }, "name"],
      [{ name: "x".repeat(201) }, "name"],
      [{}, "name"],
      [{ name: "x", extra: 1 }, "extra"],
    ] as const) {
      const res = await call("POST", "/admin/v1/orgs", { headers: ADMIN, body })
      expect(res.status).toBe(400)
      expect(res.body.error).toMatchObject({ code: "invalid_request_body", param })
    }
  })

  test("creates an API key: shown once, pk_live_ + ≥32 base62, only its hash stored", async () => {
    const org = await call("POST", "/admin/v1/orgs", { headers: ADMIN, body: { name: "Keys Co" } })
    const orgId = org.body.data.org_id as string
    const res = await call("POST", `/admin/v1/orgs/${orgId}/api_keys`, {
      headers: ADMIN,
      body: { name: "ci" },
    })
    expect(res.status).toBe(201)
    expect(res.body.object).toBe("api_key")
    expect(Object.keys(res.body.data).sort()).toEqual(["api_key", "created_at", "key_id", "prefix"])
    const apiKey = res.body.data.api_key as string
    const keyId = res.body.data.key_id as string
    expect(apiKey).toMatch(/^pk_live_[0-9A-Za-z]{32,}$/)
    const prefix = res.body.data.prefix as string
    expect(apiKey.startsWith(prefix)).toBe(true)
    expect(prefix.length).toBeLessThan(apiKey.length - 16)

    const rows = await sql((s) => s<Record<string, unknown>>`SELECT * FROM api_keys WHERE id = ${keyId}`)
    expect(rows.length).toBe(1)
    expect(rows[0]).toMatchObject({
      org_id: orgId,
      name: "ci",
      prefix,
      key_hash: hashKey(apiKey),
      revoked_at: null,
    })
    expect(rows[0].key_hash).toMatch(/^[0-9a-f]{64}$/)
    // the plaintext is nowhere in the table: not in this row, not in any other
    expect(JSON.stringify(rows[0])).not.toContain(apiKey.slice(prefix.length))
    const leaks = await sql(
      (s) => s<{ n: number }>`
      SELECT count(*)::int AS n FROM api_keys WHERE position(${apiKey.slice(prefix.length)} IN (api_keys::text)) > 0`,
    )
    expect(leaks[0].n).toBe(0)

    // the new key works, for its own organization
    const agent = await call("POST", AGENTS, {
      headers: bearer(apiKey),
      body: { name: "x", instructions: "y" },
    })
    expect(agent.status).toBe(200)
    const owner = await sql(
      (s) =>
        s<{ org_id: string }>`SELECT org_id FROM agents WHERE id = ${agent.body.data.agent_id as string}`,
    )
    expect(owner).toEqual([{ org_id: orgId }])
  })

  test("every created key is different", async () => {
    const { orgId } = await server.newTenant()
    const keys = new Set<string>()
    for (let i = 0; i < 5; i++) {
      const res = await call("POST", `/admin/v1/orgs/${orgId}/api_keys`, { headers: ADMIN, body: {} })
      keys.add(res.body.data.api_key as string)
    }
    expect(keys.size).toBe(5)
  })

  test("lists keys without plaintext; revoked_at is set after a revoke", async () => {
    const { orgId, keyId, apiKey } = await server.newTenant()
    const second = await call("POST", `/admin/v1/orgs/${orgId}/api_keys`, { headers: ADMIN, body: {} })
    const list = await call("GET", `/admin/v1/orgs/${orgId}/api_keys`, { headers: ADMIN })
    expect(list.status).toBe(200)
    expect(list.body.object).toBe("list")
    expect(list.body.data).toMatchObject({ object: "list", has_more: false, total_count: 2 })
    const items = list.body.data.data ?? []
    expect(items.map((k) => k.key_id)).toEqual([second.body.data.key_id, keyId])
    for (const item of items)
      expect(Object.keys(item).sort()).toEqual(["created_at", "key_id", "name", "prefix", "revoked_at"])
    expect(items[1]).toMatchObject({ name: "test", revoked_at: null })
    expect(items[0].name).toBeNull()
    const text = JSON.stringify(list.body)
    expect(text).not.toContain(apiKey)
    expect(text).not.toContain(second.body.data.api_key as string)

    const revoke = await call("DELETE", `/admin/v1/api_keys/${keyId}`, { headers: ADMIN })
    expect(revoke.status).toBe(200)
    expect(revoke.body.object).toBe("api_key")
    expect(revoke.body.data).toEqual({ key_id: keyId, revoked: true })
    const after = await call("GET", `/admin/v1/orgs/${orgId}/api_keys`, { headers: ADMIN })
    const revoked = after.body.data.data?.find((k) => k.key_id === keyId)
    expect(Number.isInteger(revoked?.revoked_at)).toBe(true)
    expect(after.body.data.data?.find((k) => k.key_id !== keyId)?.revoked_at).toBeNull()
    const row = await sql(
      (s) => s<{ revoked_at: Date | null }>`SELECT revoked_at FROM api_keys WHERE id = ${keyId}`,
    )
    expect(row[0].revoked_at).toBeInstanceOf(Date)

    // revoking again is harmless and keeps the first revocation time
    const again = await call("DELETE", `/admin/v1/api_keys/${keyId}`, { headers: ADMIN })
    expect(again.status).toBe(200)
    const row2 = await sql(
      (s) => s<{ revoked_at: Date | null }>`SELECT revoked_at FROM api_keys WHERE id = ${keyId}`,
    )
    expect(row2[0].revoked_at?.getTime()).toBe(row[0].revoked_at?.getTime() as number)
  })

  test("unknown organization or key → 404; malformed ids → 400", async () => {
    const id = crypto.randomUUID()
    const createKey = await call("POST", `/admin/v1/orgs/${id}/api_keys`, { headers: ADMIN, body: {} })
    expect(createKey.status).toBe(404)
    expect(createKey.body.error).toMatchObject({ type: "not_found_error", code: "organization_not_found" })
    const list = await call("GET", `/admin/v1/orgs/${id}/api_keys`, { headers: ADMIN })
    expect(list.status).toBe(404)
    expect(list.body.error.code).toBe("organization_not_found")
    const revoke = await call("DELETE", `/admin/v1/api_keys/${id}`, { headers: ADMIN })
    expect(revoke.status).toBe(404)
    expect(revoke.body.error).toMatchObject({ type: "not_found_error", code: "api_key_not_found" })

    const badOrg = await call("POST", "/admin/v1/orgs/nope/api_keys", { headers: ADMIN, body: {} })
    expect(badOrg.status).toBe(400)
    expect(badOrg.body.error).toMatchObject({ code: "invalid_request", param: "org_id" })
    const badKey = await call("DELETE", "/admin/v1/api_keys/nope", { headers: ADMIN })
    expect(badKey.status).toBe(400)
    expect(badKey.body.error).toMatchObject({ code: "invalid_request", param: "key_id" })
  })

  test("a wrong or missing admin token → 401; an API key is not an admin token", async () => {
    const { apiKey } = await server.newTenant()
    const wrong = await call("POST", "/admin/v1/orgs", {
      headers: bearer("not-the-token"),
      body: { name: "x" },
    })
    expect(wrong.status).toBe(401)
    expect(wrong.body.error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" })
    const asKey = await call("GET", `/admin/v1/orgs/${crypto.randomUUID()}/api_keys`, {
      headers: bearer(apiKey),
    })
    expect(asKey.status).toBe(401)
    const missing = await call("POST", "/admin/v1/orgs", { body: { name: "x" } })
    expect(missing.status).toBe(401)
    expect(missing.body.error.code).toBe("missing_authorization_header")
    const basic = await call("POST", "/admin/v1/orgs", {
      headers: { authorization: `Basic ${ADMIN_TOKEN}` },
      body: { name: "x" },
    })
    expect(basic.body.error.code).toBe("invalid_authorization_scheme")
    const orgs = await sql(
      (s) => s<{ n: number }>`SELECT count(*)::int AS n FROM organizations WHERE name = 'x'`,
    )
    expect(orgs[0].n).toBe(0)
  })

  test("without ADMIN_TOKEN the admin API does not exist (404 route_not_found)", async () => {
    const plain = await startServer({ adminToken: Option.none() })
    try {
      const orgId = crypto.randomUUID()
      for (const [method, path, body] of [
        ["POST", "/admin/v1/orgs", { name: "ghost" }],
        ["POST", `/admin/v1/orgs/${orgId}/api_keys`, {}],
        ["GET", `/admin/v1/orgs/${orgId}/api_keys`, undefined],
        ["DELETE", `/admin/v1/api_keys/${orgId}`, undefined],
        ["POST", "/admin/v1/orgs", "{not json"],
        ["GET", "/admin/v1/orgs", undefined],
      ] as const) {
        for (const headers of [ADMIN, {}]) {
          const res = await plain.fetchRaw(path, {
            method,
            headers,
            body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
          })
          expect(res.status).toBe(404)
          const json = (await res.json()) as Body
          expect(json.error).toMatchObject({ type: "not_found_error", code: "route_not_found" })
          expect(json.error.request_id).toBe(res.headers.get("x-request-id") as string)
        }
      }
      const ghosts = await plain.run(
        Effect.flatMap(
          SqlClient.SqlClient,
          (s) => s<{ n: number }>`SELECT count(*)::int AS n FROM organizations WHERE name = 'ghost'`,
        ),
      )
      expect(ghosts[0].n).toBe(0)
      // the public API still works
      const { apiKey } = await plain.newTenant()
      expect((await plain.fetchRaw(AGENTS, { apiKey })).status).toBe(200)
    } finally {
      await plain.dispose()
    }
  })
})
