/** Voice agents over HTTP: create, get, list, patch, delete, tenancy and request ids (SPEC §3, §5, §8). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { compileSystemInstruction, type SystemInstructionInput } from "../src/Agents/SystemInstruction.ts"
import { VoiceAgentNotFound } from "../src/Domain/Errors.ts"
import { VOICES } from "../src/Domain/Voices.ts"
import { salesQualifier } from "./support/fixtures.ts"
import { agentCount, agentRow } from "./support/rows.ts"
import { failure, startServer, type TestServer } from "./support/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server.dispose())

type Json = Record<string, unknown> & {
  data: Record<string, unknown> & { data?: Array<Record<string, unknown>> }
}

const call = async (
  method: string,
  path: string,
  apiKey: string,
  body?: unknown,
  headers?: Record<string, string>,
) => {
  const res = await server.fetchRaw(path, {
    method,
    apiKey,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, headers: res.headers, body: (await res.json()) as Json }
}

const AGENTS = "/api/v1/voice/agents"
const now = () => Math.floor(Date.now() / 1000)

const FULL_AGENT_KEYS = [
  "agent_id",
  "name",
  "instructions",
  "language",
  "purpose",
  "questions",
  "behaviors",
  "output_schema",
  "output_schema_strict",
  "extraction_model",
  "voice",
  "metadata",
  "system_instruction",
  "is_active",
  "created_at",
  "updated_at",
].sort()

const create = async (
  apiKey: string,
  body: Record<string, unknown> = { name: "Agent", instructions: "Hi" },
) => {
  const res = await call("POST", AGENTS, apiKey, body)
  expect(res.status).toBe(200)
  return res.body.data.agent_id as string
}

const dbRow = (id: string) => agentRow(server, id)
const dbCount = (orgId: string) => agentCount(server, orgId)

describe("POST /api/v1/voice/agents", () => {
  test("200 with the success envelope; X-Request-Id equals the body id; the row is stored", async () => {
    const { apiKey, orgId } = await newTenant()
    const before = now()
    const res = await call("POST", AGENTS, apiKey, { name: "Receptionist", instructions: "Greet callers." })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("application/json")
    expect(Object.keys(res.body).sort()).toEqual(["created_at", "data", "id", "object", "status"])
    expect(res.body.object).toBe("voice_agent")
    expect(res.body.status).toBe("completed")
    expect(res.body.id).toMatch(/^req_[A-Za-z0-9]+$/)
    expect(res.headers.get("x-request-id")).toBe(res.body.id as string)
    expect(Number.isInteger(res.body.created_at)).toBe(true)
    expect(res.body.created_at as number).toBeGreaterThanOrEqual(before)
    const data = res.body.data
    expect(Object.keys(data).sort()).toEqual(["agent_id", "created_at", "name"])
    expect(data.agent_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(data.name).toBe("Receptionist")
    expect(data.created_at as number).toBeGreaterThanOrEqual(before)
    expect(data.created_at as number).toBeLessThanOrEqual(now())

    const row = await dbRow(data.agent_id as string)
    expect(row.org_id).toBe(orgId)
    expect(row.name).toBe("Receptionist")
    expect(row.is_active).toBe(true)
    expect(row.system_instruction).toContain("Greet callers.")
  })

  test("an incoming X-Request-Id of at most 128 safe characters is echoed in header and body", async () => {
    const { apiKey } = await newTenant()
    for (const id of ["my-req_1.2:3", "a".repeat(128)]) {
      const res = await call("POST", AGENTS, apiKey, { name: "A", instructions: "B" }, { "x-request-id": id })
      expect(res.status).toBe(200)
      expect(res.headers.get("x-request-id")).toBe(id)
      expect(res.body.id).toBe(id)
    }
  })

  test("an unsafe or too long X-Request-Id is replaced by a fresh req_ id", async () => {
    const { apiKey } = await newTenant()
    for (const id of ["a".repeat(129), "has space", "<script>", "é"]) {
      const res = await call("GET", AGENTS, apiKey, undefined, { "x-request-id": id })
      expect(res.status).toBe(200)
      const echoed = res.headers.get("x-request-id")
      expect(echoed).not.toBe(id)
      expect(echoed).toMatch(/^req_[A-Za-z0-9]{16,}$/)
      expect(res.body.id).toBe(echoed as string)
    }
  })

  test("strings are trimmed before storing", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, {
      name: "  x  ",
      instructions: "  Be kind.  ",
      language: " fr-FR ",
      purpose: "  intake ",
      questions: [{ key: "q", ask: "  Why?  ", type: "enum", options: [" a ", "b"] }],
    })
    const got = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(got.body.data.name).toBe("x")
    expect(got.body.data.instructions).toBe("Be kind.")
    expect(got.body.data.language).toBe("fr-FR")
    expect(got.body.data.purpose).toBe("intake")
    expect(got.body.data.questions).toEqual([{ key: "q", ask: "Why?", type: "enum", options: ["a", "b"] }])
    expect((await dbRow(id)).name).toBe("x")
  })

  test("the typed client creates and reads back an agent", async () => {
    const { apiKey } = await newTenant()
    const client = await server.client(apiKey)
    const created = await Effect.runPromise(
      client.agents.create({ payload: { name: "Typed", instructions: "Via the client" } }),
    )
    expect(created.object).toBe("voice_agent")
    const got = await Effect.runPromise(client.agents.get({ path: { id: created.data.agent_id } }))
    expect(got.data.name).toBe("Typed")
    expect(got.data.agent_id).toBe(created.data.agent_id)
  })
})

describe("GET /api/v1/voice/agents/:id", () => {
  test("the Sales Qualifier example round-trips with every field", async () => {
    const { apiKey } = await newTenant()
    const created = await call("POST", AGENTS, apiKey, salesQualifier)
    expect(created.status).toBe(200)
    const id = created.body.data.agent_id as string
    const res = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(res.status).toBe(200)
    expect(res.body.object).toBe("voice_agent")
    expect(res.body.status).toBe("completed")
    expect(res.headers.get("x-request-id")).toBe(res.body.id as string)
    const agent = res.body.data
    expect(Object.keys(agent).sort()).toEqual(FULL_AGENT_KEYS)
    expect(agent).toMatchObject({
      agent_id: id,
      name: salesQualifier.name,
      instructions: salesQualifier.instructions,
      language: "en-US",
      purpose: salesQualifier.purpose,
      questions: salesQualifier.questions,
      behaviors: salesQualifier.behaviors,
      output_schema: salesQualifier.output_schema,
      output_schema_strict: null,
      extraction_model: null,
      voice: salesQualifier.voice,
      metadata: {},
      is_active: true,
      created_at: created.body.data.created_at,
    })
    expect(agent.updated_at).toBe(agent.created_at)
    const instruction = agent.system_instruction as string
    expect(instruction).toBe(
      compileSystemInstruction({ ...salesQualifier, questions: [...salesQualifier.questions] }),
    )
    for (const q of salesQualifier.questions) expect(instruction).toContain(q.ask)
    expect(instruction).toContain("1-10")
    expect(instruction).toContain("Great, I'll connect you with our team shortly.")
    expect(instruction).toContain("friendly")
  })

  test("defaults: unset fields come back as the Pi API returns them (voice {}, purpose null, …)", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, { name: "Bare", instructions: "Just talk." })
    const res = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(res.status).toBe(200)
    expect(res.body.data).toMatchObject({
      language: "en-US",
      purpose: null,
      questions: [],
      behaviors: {},
      output_schema: {},
      output_schema_strict: null,
      extraction_model: null,
      voice: {},
      metadata: {},
      is_active: true,
    })
    // every field is present, none omitted
    expect(Object.keys(res.body.data).sort()).toEqual(FULL_AGENT_KEYS)
    expect((res.body.data.system_instruction as string).length).toBeGreaterThan(0)
    expect(res.body.data.system_instruction).toContain("Just talk.")
  })

  test("output_schema_strict, extraction_model and metadata are returned when set", async () => {
    const { apiKey } = await newTenant()
    const strict = {
      type: "object",
      properties: {
        score: { type: "number", minimum: 0, maximum: 10 },
        tags: { type: "array", items: { type: "string" } },
      },
      required: ["score"],
    }
    const id = await create(apiKey, {
      name: "Strict",
      instructions: "x",
      output_schema_strict: strict,
      extraction_model: "gemini-3.1-pro-preview",
      metadata: { team: "sales", tier: "gold" },
    })
    const res = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(res.body.data.output_schema_strict).toEqual(strict)
    expect(res.body.data.extraction_model).toBe("gemini-3.1-pro-preview")
    expect(res.body.data.metadata).toEqual({ team: "sales", tier: "gold" })
  })
})

describe("GET /api/v1/voice/agents (list)", () => {
  test("newest first with limit/offset, has_more and total_count; items carry the summary fields", async () => {
    const { apiKey } = await newTenant()
    const ids: Array<string> = []
    for (const name of ["first", "second", "third"])
      ids.push(await create(apiKey, { name, instructions: "x", purpose: `${name} purpose` }))

    const page1 = await call("GET", `${AGENTS}?limit=2`, apiKey)
    expect(page1.status).toBe(200)
    expect(page1.body.object).toBe("list")
    expect(page1.body.status).toBe("completed")
    const list1 = page1.body.data
    expect(Object.keys(list1).sort()).toEqual(["data", "has_more", "object", "total_count"])
    expect(list1.object).toBe("list")
    expect(list1.has_more).toBe(true)
    expect(list1.total_count).toBe(3)
    expect(list1.data?.map((a) => a.name)).toEqual(["third", "second"])
    const item = list1.data?.[0] ?? {}
    expect(Object.keys(item).sort()).toEqual(
      ["agent_id", "created_at", "is_active", "language", "name", "purpose", "updated_at"].sort(),
    )
    expect(item).toMatchObject({
      agent_id: ids[2],
      language: "en-US",
      purpose: "third purpose",
      is_active: true,
    })

    const page2 = await call("GET", `${AGENTS}?limit=2&offset=2`, apiKey)
    expect(page2.body.data.data?.map((a) => a.agent_id)).toEqual([ids[0]])
    expect(page2.body.data.has_more).toBe(false)
    expect(page2.body.data.total_count).toBe(3)

    const beyond = await call("GET", `${AGENTS}?offset=10`, apiKey)
    expect(beyond.status).toBe(200)
    expect(beyond.body.data).toEqual({ object: "list", data: [], has_more: false, total_count: 3 })

    const bounds = await call("GET", `${AGENTS}?limit=100&offset=0`, apiKey)
    expect(bounds.status).toBe(200)
    expect(bounds.body.data.data?.length).toBe(3)
  })

  test("default limit is 20", async () => {
    const { apiKey } = await newTenant()
    for (let i = 0; i < 21; i++) await create(apiKey, { name: `a${i}`, instructions: "x" })
    const res = await call("GET", AGENTS, apiKey)
    expect(res.status).toBe(200)
    expect(res.body.data.data?.length).toBe(20)
    expect(res.body.data.data?.[0].name).toBe("a20")
    expect(res.body.data.has_more).toBe(true)
    expect(res.body.data.total_count).toBe(21)
  })

  test("an empty organization lists nothing", async () => {
    const { apiKey } = await newTenant()
    const res = await call("GET", AGENTS, apiKey)
    expect(res.status).toBe(200)
    expect(res.body.data).toEqual({ object: "list", data: [], has_more: false, total_count: 0 })
  })

  test("offset up to the Pi API's maximum (1000000) is accepted", async () => {
    const { apiKey } = await newTenant()
    await create(apiKey, { name: "only", instructions: "x" })
    const res = await call("GET", `${AGENTS}?offset=1000000`, apiKey)
    expect(res.status).toBe(200)
    expect(res.body.data).toEqual({ object: "list", data: [], has_more: false, total_count: 1 })
  })

  test("soft-deleted agents are listed with is_active false", async () => {
    const { apiKey } = await newTenant()
    const kept = await create(apiKey, { name: "kept", instructions: "x" })
    const gone = await create(apiKey, { name: "gone", instructions: "x" })
    expect((await call("DELETE", `${AGENTS}/${gone}`, apiKey)).status).toBe(200)
    const res = await call("GET", AGENTS, apiKey)
    expect(res.body.data.total_count).toBe(2)
    expect(res.body.data.data?.map((a) => [a.agent_id, a.is_active])).toEqual([
      [gone, false],
      [kept, true],
    ])
  })

  for (const [query, param, message] of [
    ["limit=0", "limit", "between 1 and 100"],
    ["limit=101", "limit", "between 1 and 100"],
    ["limit=abc", "limit", "integer"],
    ["limit=1.5", "limit", "integer"],
    ["offset=-1", "offset", "between 0"],
    ["offset=1000001", "offset", "between 0 and 1000000"], // the Pi API's maximum
    ["offset=abc", "offset", "integer"],
    ["limit=10&offset=2.5", "offset", "integer"],
  ] as const) {
    test(`?${query} → 400 invalid_request with param ${param}`, async () => {
      const { apiKey } = await newTenant()
      const res = await call("GET", `${AGENTS}?${query}`, apiKey)
      expect(res.status).toBe(400)
      const error = (res.body as unknown as { error: Record<string, unknown> }).error
      expect(error).toMatchObject({ type: "invalid_request_error", code: "invalid_request", param })
      expect(error.message).toContain(message)
      expect(error.request_id).toBe(res.headers.get("x-request-id") as string)
      expect(error.issues).toEqual([{ path: param, message: expect.stringContaining(message) }])
    })
  }
})

describe("id checks and tenancy", () => {
  for (const method of ["GET", "PATCH", "DELETE"] as const) {
    test(`${method} with a non-UUID id → 400 invalid_request, param id`, async () => {
      const { apiKey } = await newTenant()
      const res = await call(
        method,
        `${AGENTS}/not-a-uuid`,
        apiKey,
        method === "PATCH" ? { name: "x" } : undefined,
      )
      expect(res.status).toBe(400)
      const error = (res.body as unknown as { error: Record<string, unknown> }).error
      expect(error).toMatchObject({ type: "invalid_request_error", code: "invalid_request", param: "id" })
      expect(error.issues).toEqual([{ path: "id", message: "must be a UUID" }])
    })

    test(`${method} of an unknown id → 404 voice_agent_not_found`, async () => {
      const { apiKey } = await newTenant()
      const id = crypto.randomUUID()
      const res = await call(
        method,
        `${AGENTS}/${id}`,
        apiKey,
        method === "PATCH" ? { name: "x" } : undefined,
      )
      expect(res.status).toBe(404)
      const error = (res.body as unknown as { error: Record<string, unknown> }).error
      expect(error).toMatchObject({ type: "not_found_error", code: "voice_agent_not_found" })
      expect(error.message).toContain(id)
    })

    test(`${method} of another organization's agent → 404 (never 403), nothing changes`, async () => {
      const owner = await newTenant()
      const other = await newTenant()
      const id = await create(owner.apiKey, { name: "Private", instructions: "x" })
      const before = await dbRow(id)
      const res = await call(
        method,
        `${AGENTS}/${id}`,
        other.apiKey,
        method === "PATCH" ? { name: "Hijacked" } : undefined,
      )
      expect(res.status).toBe(404)
      expect((res.body as unknown as { error: Record<string, unknown> }).error.code).toBe(
        "voice_agent_not_found",
      )
      const after = await dbRow(id)
      expect(after.name).toBe("Private")
      expect(after.is_active).toBe(true)
      expect(after.updated_at.getTime()).toBe(before.updated_at.getTime())
    })
  }

  test("the typed client decodes 404 into VoiceAgentNotFound", async () => {
    const { apiKey } = await newTenant()
    const client = await server.client(apiKey)
    const error = await failure(client.agents.get({ path: { id: crypto.randomUUID() as never } }))
    expect(error).toBeInstanceOf(VoiceAgentNotFound)
  })

  test("organizations never see each other's agents in lists, both ways", async () => {
    const a = await newTenant()
    const b = await newTenant()
    const aId = await create(a.apiKey, { name: "A's", instructions: "x" })
    const bId = await create(b.apiKey, { name: "B's", instructions: "x" })
    const listA = await call("GET", AGENTS, a.apiKey)
    const listB = await call("GET", AGENTS, b.apiKey)
    expect(listA.body.data.data?.map((x) => x.agent_id)).toEqual([aId])
    expect(listB.body.data.data?.map((x) => x.agent_id)).toEqual([bId])
    expect(listA.body.data.total_count).toBe(1)
    expect((await call("GET", `${AGENTS}/${bId}`, a.apiKey)).status).toBe(404)
    expect((await call("GET", `${AGENTS}/${aId}`, b.apiKey)).status).toBe(404)
    expect((await call("GET", `${AGENTS}/${aId}`, a.apiKey)).status).toBe(200)
  })
})

describe("PATCH /api/v1/voice/agents/:id", () => {
  test("changes only the given fields, returns the full agent, moves updated_at", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, salesQualifier)
    const before = await dbRow(id)
    const res = await call("PATCH", `${AGENTS}/${id}`, apiKey, { name: "  Renamed  " })
    expect(res.status).toBe(200)
    expect(res.body.object).toBe("voice_agent")
    expect(Object.keys(res.body.data).sort()).toEqual(FULL_AGENT_KEYS)
    expect(res.body.data).toMatchObject({
      name: "Renamed",
      instructions: salesQualifier.instructions,
      questions: salesQualifier.questions,
      behaviors: salesQualifier.behaviors,
      voice: salesQualifier.voice,
    })
    const got = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(got.body.data).toEqual(res.body.data)
    const after = await dbRow(id)
    expect(after.name).toBe("Renamed")
    expect(after.updated_at.getTime()).toBeGreaterThan(before.updated_at.getTime())
    expect(after.created_at.getTime()).toBe(before.created_at.getTime())
    expect(res.body.data.updated_at as number).toBeGreaterThanOrEqual(res.body.data.created_at as number)
  })

  test("questions, behaviors, output_schema, metadata and voice are replaced whole", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, { ...salesQualifier, metadata: { a: "1", b: "2" } })
    const patch = {
      questions: [{ key: "timeline", ask: "When do you plan to buy?", type: "date" }],
      behaviors: { speaking_pace: "fast" },
      output_schema: { timeline: "date" },
      metadata: { c: "3" },
      voice: { language_code: "de-DE" },
    }
    const res = await call("PATCH", `${AGENTS}/${id}`, apiKey, patch)
    expect(res.status).toBe(200)
    expect(res.body.data).toMatchObject(patch)
    expect(res.body.data.behaviors).toEqual({ speaking_pace: "fast" })
    expect(res.body.data.voice).toEqual({ language_code: "de-DE" })
    const row = await dbRow(id)
    expect<unknown>(row.questions).toEqual(patch.questions)
  })

  test("system_instruction is recompiled when the configuration changes", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, salesQualifier)
    const original = (await call("GET", `${AGENTS}/${id}`, apiKey)).body.data.system_instruction as string
    const res = await call("PATCH", `${AGENTS}/${id}`, apiKey, {
      instructions: "You book demos for the product team.",
      questions: [{ key: "demo_day", ask: "Which weekday suits you for a demo?", type: "text" }],
    })
    const updated = res.body.data.system_instruction as string
    expect(updated).not.toBe(original)
    expect(updated).toContain("You book demos for the product team.")
    expect(updated).toContain("Which weekday suits you for a demo?")
    expect(updated).not.toContain(salesQualifier.instructions)
    expect(updated).not.toContain("How many employees does your company have?")
    expect((await dbRow(id)).system_instruction).toBe(updated)
  })

  test("output_schema_strict: null and extraction_model: null clear them; purpose and voice null too (voice reads as {})", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, {
      ...salesQualifier,
      output_schema_strict: { type: "object", properties: { a: { type: "string" } } },
      extraction_model: "gemini-3.1-pro-preview",
    })
    const res = await call("PATCH", `${AGENTS}/${id}`, apiKey, {
      output_schema_strict: null,
      extraction_model: null,
      purpose: null,
      voice: null,
    })
    expect(res.status).toBe(200)
    expect(res.body.data).toMatchObject({
      output_schema_strict: null,
      extraction_model: null,
      purpose: null,
      voice: {},
    })
    const row = await dbRow(id)
    expect(row.output_schema_strict).toBeNull()
    expect(row.extraction_model).toBeNull()
    // the rest is untouched
    expect(res.body.data.questions).toEqual(salesQualifier.questions)
  })

  test("concurrent PATCHes of different fields both survive", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, salesQualifier)
    const patches = [{ name: "Concurrent" }, { purpose: "Both kept" }, { metadata: { run: "1" } }]
    const results = await Promise.all(patches.map((p) => call("PATCH", `${AGENTS}/${id}`, apiKey, p)))
    for (const r of results) expect(r.status).toBe(200)
    const got = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(got.body.data).toMatchObject({ name: "Concurrent", purpose: "Both kept", metadata: { run: "1" } })
  })

  test("an empty body is 400 and changes nothing", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey)
    const before = await dbRow(id)
    const res = await call("PATCH", `${AGENTS}/${id}`, apiKey, {})
    expect(res.status).toBe(400)
    const error = (res.body as unknown as { error: Record<string, unknown> }).error
    expect(error).toMatchObject({ type: "invalid_request_error", code: "invalid_request_body" })
    expect(error.message).toContain("at least one field")
    expect((error.issues as Array<unknown>).length).toBeGreaterThan(0)
    expect((await dbRow(id)).updated_at.getTime()).toBe(before.updated_at.getTime())
  })

  test("is_active toggles off and back on", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey)
    const off = await call("PATCH", `${AGENTS}/${id}`, apiKey, { is_active: false })
    expect(off.status).toBe(200)
    expect(off.body.data.is_active).toBe(false)
    expect((await dbRow(id)).is_active).toBe(false)
    expect((await call("GET", AGENTS, apiKey)).body.data.data?.[0].is_active).toBe(false)
    const on = await call("PATCH", `${AGENTS}/${id}`, apiKey, { is_active: true })
    expect(on.body.data.is_active).toBe(true)
    expect((await dbRow(id)).is_active).toBe(true)
  })

  test("invalid fields are rejected with 400 and nothing is written", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey)
    const res = await call("PATCH", `${AGENTS}/${id}`, apiKey, { name: "ok", behaviors: { tone: "grumpy" } })
    expect(res.status).toBe(400)
    expect((res.body as unknown as { error: Record<string, unknown> }).error.param).toBe("behaviors.tone")
    expect((await dbRow(id)).name).toBe("Agent")
    const nameNull = await call("PATCH", `${AGENTS}/${id}`, apiKey, { name: null })
    expect(nameNull.status).toBe(400)
    expect((nameNull.body as unknown as { error: Record<string, unknown> }).error.param).toBe("name")
    const unknown = await call("PATCH", `${AGENTS}/${id}`, apiKey, { agent_id: crypto.randomUUID() })
    expect(unknown.status).toBe(400)
    expect((unknown.body as unknown as { error: Record<string, unknown> }).error.param).toBe("agent_id")
  })
})

describe("GET /api/v1/voice/agents/:id/preview", () => {
  test("the system instruction compiled from the current settings, in the Pi API's shape", async () => {
    const { apiKey } = await newTenant()
    const id = await create(apiKey, salesQualifier)
    // A stale stored instruction is not what the preview shows: it compiles the current settings.
    await server.run(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`UPDATE agents SET system_instruction = 'legacy' WHERE id = ${id}`,
      ),
    )
    const res = await call("GET", `${AGENTS}/${id}/preview`, apiKey)
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(["created_at", "data", "id", "object", "status"])
    expect(res.body).toMatchObject({ object: "voice_agent_preview", status: "completed" })
    expect(res.headers.get("x-request-id")).toBe(res.body.id as string)
    const full = (await call("GET", `${AGENTS}/${id}`, apiKey)).body.data
    expect(res.body.data).toEqual({
      agent_id: id,
      system_instruction: compileSystemInstruction(full as unknown as SystemInstructionInput),
    })
    expect(res.body.data.system_instruction).not.toBe("legacy")
    expect(res.body.data.system_instruction).toContain(salesQualifier.instructions)
    expect((await dbRow(id)).system_instruction).toBe("legacy") // a preview writes nothing
  })

  test("the escalation phrase is what the agent says when a request is out of its scope", async () => {
    const { apiKey } = await newTenant()
    const phrase = "I can only help with plan upgrades; a colleague will email you."
    const id = await create(apiKey, {
      name: "Scoped",
      instructions: "x",
      behaviors: { escalation_phrase: phrase },
    })
    const res = await call("GET", `${AGENTS}/${id}/preview`, apiKey)
    expect(res.body.data.system_instruction).toContain(
      `If you cannot safely help or a request is outside your scope, say something like: "${phrase}"`,
    )
  })

  test("inactive agents can be previewed; unknown, foreign and malformed ids cannot", async () => {
    const owner = await newTenant()
    const other = await newTenant()
    const id = await create(owner.apiKey)
    expect((await call("DELETE", `${AGENTS}/${id}`, owner.apiKey)).status).toBe(200)
    expect((await call("GET", `${AGENTS}/${id}/preview`, owner.apiKey)).status).toBe(200)
    for (const [path, apiKey] of [
      [`${AGENTS}/${crypto.randomUUID()}/preview`, owner.apiKey],
      [`${AGENTS}/${id}/preview`, other.apiKey],
    ] as const) {
      const res = await call("GET", path, apiKey)
      expect(res.status).toBe(404)
      expect((res.body as unknown as { error: Record<string, unknown> }).error).toMatchObject({
        code: "voice_agent_not_found",
      })
    }
    const bad = await call("GET", `${AGENTS}/not-a-uuid/preview`, owner.apiKey)
    expect(bad.status).toBe(400)
    expect((bad.body as unknown as { error: Record<string, unknown> }).error).toMatchObject({
      code: "invalid_request",
      param: "id",
    })
    const anonymous = await server.fetchRaw(`${AGENTS}/${id}/preview`)
    expect(anonymous.status).toBe(401)
  })
})

describe("DELETE /api/v1/voice/agents/:id", () => {
  test("soft-deletes: 200 {agent_id, deleted: true}; repeat is still 200; row kept inactive", async () => {
    const { apiKey, orgId } = await newTenant()
    const id = await create(apiKey)
    const res = await call("DELETE", `${AGENTS}/${id}`, apiKey)
    expect(res.status).toBe(200)
    expect(res.body.object).toBe("voice_agent.deleted")
    expect(res.body.status).toBe("completed")
    expect(res.headers.get("x-request-id")).toBe(res.body.id as string)
    expect(res.body.data).toEqual({ agent_id: id, deleted: true })
    const first = await dbRow(id)
    expect(first.is_active).toBe(false)

    const again = await call("DELETE", `${AGENTS}/${id}`, apiKey)
    expect(again.status).toBe(200)
    expect(again.body.data).toEqual({ agent_id: id, deleted: true })
    const second = await dbRow(id)
    expect(second.is_active).toBe(false)
    expect(second.updated_at.getTime()).toBe(first.updated_at.getTime())
    expect(await dbCount(orgId)).toBe(1)

    const got = await call("GET", `${AGENTS}/${id}`, apiKey)
    expect(got.status).toBe(200)
    expect(got.body.data.is_active).toBe(false)
  })
})

describe("GET /api/v1/voice/voices", () => {
  test("lists the 30 Gemini Live voices with Puck as the default", async () => {
    const { apiKey } = await newTenant()
    const res = await call("GET", "/api/v1/voice/voices", apiKey)
    expect(res.status).toBe(200)
    expect(res.body.object).toBe("list")
    expect(res.headers.get("x-request-id")).toBe(res.body.id as string)
    const list = res.body.data
    expect(list.object).toBe("list")
    expect(list.total_count).toBe(30)
    expect(list.has_more).toBe(false)
    const voices = list.data ?? []
    expect(voices.map((v) => v.name)).toEqual([...VOICES])
    expect(voices.filter((v) => v.default === true).map((v) => v.name)).toEqual(["Puck"])
    // Pi's item fields (name, description, default), plus the provider
    expect(voices[0]).toEqual({ name: "Puck", description: "Upbeat", provider: "gemini_live", default: true })
    expect(voices.find((v) => v.name === "Kore")?.description).toBe("Firm")
    for (const name of ["Zephyr", "Charon", "Kore", "Fenrir", "Aoede", "Zubenelgenubi", "Sulafat"])
      expect(voices.some((v) => v.name === name)).toBe(true)
  })

  test("requires an API key", async () => {
    const res = await server.fetchRaw("/api/v1/voice/voices")
    expect(res.status).toBe(401)
    const body = (await res.json()) as { error: Record<string, unknown> }
    expect(body.error.code).toBe("missing_authorization_header")
  })

  test("every listed voice is accepted as an agent voice", async () => {
    const { apiKey } = await newTenant()
    const list = await call("GET", "/api/v1/voice/voices", apiKey)
    for (const voice of list.body.data.data ?? []) {
      const res = await call("POST", AGENTS, apiKey, {
        name: "v",
        instructions: "x",
        voice: { name: voice.name },
      })
      expect(res.status).toBe(200)
    }
  })
})

const newTenant = () => server.newTenant()
