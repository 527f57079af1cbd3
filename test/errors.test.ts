/** The one error envelope (SPEC §3) for failures outside the handlers, and the operations routes (§11). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Either, ParseResult, Schema } from "effect"
import { JsonBody } from "../src/Http/Body.ts"
import { agentCount as countAgents } from "./support/rows.ts"
import { startServer, type TestServer } from "./support/server.ts"

const MAX_BODY_BYTES = 1024
let server: TestServer
beforeAll(async () => {
  server = await startServer({ maxBodyBytes: MAX_BODY_BYTES })
})
afterAll(() => server.dispose())

const AGENTS = "/api/v1/voice/agents"
const ENVELOPE_KEYS = new Set(["type", "code", "message", "request_id", "param", "issues"])

interface ErrorBody {
  readonly error: Record<string, unknown> & { readonly message: string; readonly request_id: string }
}

/** Status, code and type as given; exactly the envelope keys; request id = header; no internals. */
const expectError = async (res: Response, status: number, code: string, type: string) => {
  expect(res.status).toBe(status)
  expect(res.headers.get("content-type")).toContain("application/json")
  const text = await res.text()
  const body = JSON.parse(text) as ErrorBody
  expect(Object.keys(body)).toEqual(["error"])
  for (const key of Object.keys(body.error)) expect(ENVELOPE_KEYS.has(key)).toBe(true)
  expect(body.error.type).toBe(type)
  expect(body.error.code).toBe(code)
  expect(body.error.message).toBeString()
  expect(body.error.message.length).toBeGreaterThan(0)
  const requestId = res.headers.get("x-request-id")
  expect(requestId).toBeTruthy()
  expect(body.error.request_id).toBe(requestId as string)
  expect(text).not.toMatch(/\bat \S+ \(|\.ts:\d+|node_modules|Stack|SELECT |INSERT /i)
  return body.error
}

const agentCount = (orgId: string) => countAgents(server, orgId)

describe("malformed requests", () => {
  test("NUL characters (which PostgreSQL cannot store) → 400 invalid_request_body, never a 5xx", async () => {
    const { apiKey, orgId } = await server.newTenant()
    for (const [param, body] of [
      ["name", { name: "a\u0000b", instructions: "x" }],
      ["metadata.k", { name: "a", instructions: "x", metadata: { k: "v\u0000" } }],
      ["metadata.k\u0000", { name: "a", instructions: "x", metadata: { "k\u0000": "v" } }],
      [
        "output_schema_strict",
        { name: "a", instructions: "x", output_schema_strict: { type: "object", title: "\u0000" } },
      ],
    ] as const) {
      const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body: JSON.stringify(body) })
      const error = await expectError(res, 400, "invalid_request_body", "invalid_request_error")
      expect(error.param).toBe(param)
    }
    expect(await agentCount(orgId)).toBe(0)
  })

  test("malformed JSON → 400 invalid_json_body, nothing written", async () => {
    const { apiKey, orgId } = await server.newTenant()
    for (const body of ['{"name": "x",', "{name: 'x'}", "not json", '{"a":1}}']) {
      const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body })
      const error = await expectError(res, 400, "invalid_json_body", "invalid_request_error")
      expect(error.message).toBe("Request body is not valid JSON.")
      expect(error.param).toBeUndefined()
    }
    expect(await agentCount(orgId)).toBe(0)
  })

  test("a __proto__ key anywhere in a body → 400 naming it, nothing written (it would become a prototype)", async () => {
    const { apiKey, orgId } = await server.newTenant()
    const strict = '{"__proto__": {"type": "object", "properties": {"a": {"type": "string"}}}}'
    for (const [body, param] of [
      [
        `{"name": "a", "instructions": "b", "output_schema_strict": ${strict}}`,
        "output_schema_strict.__proto__",
      ],
      ['{"name": "a", "instructions": "b", "metadata": {"__proto__": "x"}}', "metadata.__proto__"],
      ['{"__proto__": {"name": "a"}, "name": "a", "instructions": "b"}', "__proto__"],
    ]) {
      const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body })
      const error = await expectError(res, 400, "invalid_request_body", "invalid_request_error")
      expect(error.param).toBe(param)
      expect(error.issues).toEqual([{ path: param, message: "is not allowed as a key" }])
    }
    expect(await agentCount(orgId)).toBe(0)
    expect(({} as Record<string, unknown>).type).toBeUndefined()
  })

  test("a body that is not valid UTF-8 → 400 invalid_json_body, nothing written (never stored altered)", async () => {
    const { apiKey, orgId } = await server.newTenant()
    const bytes = new Uint8Array([
      ...Buffer.from('{"name": "a'),
      0xc3,
      0x28,
      ...Buffer.from('", "instructions": "b"}'),
    ])
    const res = await fetch(`${server.baseUrl}${AGENTS}`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: bytes,
    })
    const error = await expectError(res, 400, "invalid_json_body", "invalid_request_error")
    expect(error.message).toBe("Request body is not valid UTF-8.")
    expect(await agentCount(orgId)).toBe(0)
  })

  test("a missing body is read as {}: the missing required fields are named", async () => {
    const { apiKey, orgId } = await server.newTenant()
    const res = await server.fetchRaw(AGENTS, {
      method: "POST",
      apiKey,
      headers: { "content-type": "application/json" },
    })
    const error = await expectError(res, 400, "invalid_request_body", "invalid_request_error")
    expect((error.issues as Array<{ path: string }>).map((i) => i.path).sort()).toEqual([
      "instructions",
      "name",
    ])
    const patch = await server.fetchRaw(`${AGENTS}/${crypto.randomUUID()}`, { method: "PATCH", apiKey })
    expect(
      (await expectError(patch, 400, "invalid_request_body", "invalid_request_error")).message,
    ).toContain("at least one field")
    expect(await agentCount(orgId)).toBe(0)
  })

  test("a body larger in shape than anything the API accepts is refused before validation", async () => {
    const roomy = await startServer()
    const { apiKey, orgId } = await roomy.newTenant()
    const many = JSON.stringify({
      name: "a",
      instructions: "b",
      questions: Array.from({ length: 6000 }, () => ({})),
    })
    const res = await fetch(`${roomy.baseUrl}${AGENTS}`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: many,
    })
    const error = await expectError(res, 400, "invalid_request_body", "invalid_request_error")
    expect(error.param).toBe("questions")
    expect(error.issues).toHaveLength(1)
    let deep: unknown = 1
    for (let i = 0; i < 10_000; i++) deep = [deep]
    const nested = await fetch(`${roomy.baseUrl}${AGENTS}`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "a", instructions: "b", metadata: { a: deep } }),
    })
    expect(
      (await expectError(nested, 400, "invalid_request_body", "invalid_request_error")).message,
    ).toContain("nested")
    // many small mistakes: the report stays short
    const bad = Array.from({ length: 64 }, () => ({ key: "1", ask: "", type: "x" }))
    const report = await roomy.fetchRaw(AGENTS, {
      method: "POST",
      apiKey,
      body: JSON.stringify({ name: "a", instructions: "b", questions: bad }),
    })
    const reported = await expectError(report, 400, "invalid_request_body", "invalid_request_error")
    expect(reported.issues as unknown[]).toHaveLength(50)
    expect(await agentCount(orgId)).toBe(0)
    await roomy.dispose()
  })

  test("malformed JSON on PATCH → 400 invalid_json_body", async () => {
    const { apiKey } = await server.newTenant()
    const res = await server.fetchRaw(`${AGENTS}/${crypto.randomUUID()}`, {
      method: "PATCH",
      apiKey,
      body: "{",
    })
    await expectError(res, 400, "invalid_json_body", "invalid_request_error")
  })

  test("a body that is not JSON → 415 unsupported_media_type, nothing written", async () => {
    const { apiKey, orgId } = await server.newTenant()
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/xml"]) {
      const res = await server.fetchRaw(AGENTS, {
        method: "POST",
        apiKey,
        headers: { "content-type": contentType },
        body: "name=x&instructions=y",
      })
      const error = await expectError(res, 415, "unsupported_media_type", "invalid_request_error")
      expect(error.message).toContain(contentType)
      // curl -d's default type gets a hint at the fix
      expect(error.message.includes("curl")).toBe(contentType === "application/x-www-form-urlencoded")
    }
    expect(await agentCount(orgId)).toBe(0)
  })

  test("JSON with a charset parameter, and any application/*+json type, is accepted", async () => {
    const { apiKey, orgId } = await server.newTenant()
    for (const contentType of ["application/json; charset=utf-8", "application/vnd.api+json"]) {
      const res = await server.fetchRaw(AGENTS, {
        method: "POST",
        apiKey,
        headers: { "content-type": contentType },
        body: JSON.stringify({ name: "x", instructions: "y" }),
      })
      expect(res.status).toBe(200)
    }
    expect(await agentCount(orgId)).toBe(2)
  })

  test("the shape guard runs before the payload's own validation, which never sees a body too large", () => {
    let validated = 0
    const decode = Schema.decodeUnknownEither(
      JsonBody(
        Schema.Struct({
          a: Schema.Array(Schema.Number).pipe(Schema.filter(() => ++validated > 0)),
        }),
      ),
    )
    const refused = decode({ a: Array.from({ length: 5001 }, () => 1) })
    expect(validated).toBe(0)
    expect(Either.isLeft(refused) && ParseResult.ArrayFormatter.formatErrorSync(refused.left)).toEqual([
      { _tag: "Type", path: ["a"], message: "must have at most 5000 items" },
    ])
    expect(decode({ a: [1] })).toEqual(Either.right({ a: [1] }))
    expect(validated).toBe(1)
  })

  test(`a body over MAX_BODY_BYTES (${MAX_BODY_BYTES}) → 413 payload_too_large, nothing written`, async () => {
    const { apiKey, orgId } = await server.newTenant()
    const body = JSON.stringify({ name: "x", instructions: "a".repeat(MAX_BODY_BYTES) })
    expect(body.length).toBeGreaterThan(MAX_BODY_BYTES)
    const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body })
    const error = await expectError(res, 413, "payload_too_large", "invalid_request_error")
    expect(error.message).toContain(String(MAX_BODY_BYTES))
    expect(await agentCount(orgId)).toBe(0)
  })

  test("a body of exactly MAX_BODY_BYTES is accepted", async () => {
    const { apiKey, orgId } = await server.newTenant()
    const overhead = JSON.stringify({ name: "x", instructions: "" }).length
    const body = JSON.stringify({ name: "x", instructions: "a".repeat(MAX_BODY_BYTES - overhead) })
    expect(new TextEncoder().encode(body).length).toBe(MAX_BODY_BYTES)
    const res = await server.fetchRaw(AGENTS, { method: "POST", apiKey, body })
    expect(res.status).toBe(200)
    expect(await agentCount(orgId)).toBe(1)
  })

  test("the size limit applies before authentication", async () => {
    const res = await server.fetchRaw(AGENTS, { method: "POST", body: "x".repeat(MAX_BODY_BYTES + 1) })
    await expectError(res, 413, "payload_too_large", "invalid_request_error")
  })

  test("a chunked body within MAX_BODY_BYTES is read as usual", async () => {
    const { apiKey, orgId } = await server.newTenant()
    const payload = new TextEncoder().encode(JSON.stringify({ name: "chunked", instructions: "ok" }))
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(payload.slice(0, 10))
        controller.enqueue(payload.slice(10))
        controller.close()
      },
    })
    const res = await server.fetchRaw(AGENTS, {
      method: "POST",
      apiKey,
      headers: { "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit)
    expect(res.status).toBe(200)
    expect(((await res.json()) as { data: { name: string } }).data.name).toBe("chunked")
    expect(await agentCount(orgId)).toBe(1)
  })

  test("a chunked body over MAX_BODY_BYTES → 413 payload_too_large", async () => {
    const { apiKey, orgId } = await server.newTenant()
    const payload = new TextEncoder().encode(
      JSON.stringify({ name: "x", instructions: "a".repeat(4 * MAX_BODY_BYTES) }),
    )
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(payload)
        controller.close()
      },
    })
    const res = await server.fetchRaw(AGENTS, {
      method: "POST",
      apiKey,
      headers: { "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit)
    await expectError(res, 413, "payload_too_large", "invalid_request_error")
    expect(await agentCount(orgId)).toBe(0)
  })
})

describe("routing", () => {
  test("unknown paths → 404 route_not_found, before authentication", async () => {
    const { apiKey } = await server.newTenant()
    for (const [method, path, key] of [
      ["GET", "/nope", undefined],
      ["GET", "/api/v1/voice/unknown", apiKey],
      ["POST", "/api/v1/voice/agents/x/y", apiKey],
      ["DELETE", "/api/v2/voice/agents", undefined],
    ] as const) {
      const res = await server.fetchRaw(path, { method, apiKey: key })
      const error = await expectError(res, 404, "route_not_found", "not_found_error")
      expect(error.message).toContain(path)
    }
  })

  test("a wrong method on a known path → 405 method_not_allowed", async () => {
    const { apiKey } = await server.newTenant()
    const id = crypto.randomUUID()
    for (const [method, path] of [
      ["PUT", AGENTS],
      ["DELETE", AGENTS],
      ["PATCH", AGENTS],
      ["POST", `${AGENTS}/${id}`],
      ["PUT", `${AGENTS}/${id}`],
      ["POST", "/healthz"],
      ["POST", "/api/v1/voice/voices"],
    ] as const) {
      const res = await server.fetchRaw(path, { method, apiKey })
      const error = await expectError(res, 405, "method_not_allowed", "invalid_request_error")
      expect(error.message).toContain(method)
      expect(res.headers.get("allow")).toBeTruthy()
    }
    const res = await server.fetchRaw(AGENTS, { method: "PUT", apiKey })
    expect(res.headers.get("allow")).toBe("POST, GET")
  })

  test("an incoming X-Request-Id is echoed on errors too", async () => {
    const res = await server.fetchRaw("/nope", { headers: { "x-request-id": "trace-42" } })
    expect(res.headers.get("x-request-id")).toBe("trace-42")
    const error = await expectError(res, 404, "route_not_found", "not_found_error")
    expect(error.request_id).toBe("trace-42")
  })

  test("every error response carries a fresh request id", async () => {
    const ids = new Set<string>()
    for (let i = 0; i < 5; i++) {
      const res = await server.fetchRaw("/nope")
      const error = await expectError(res, 404, "route_not_found", "not_found_error")
      ids.add(error.request_id)
    }
    expect(ids.size).toBe(5)
  })
})

describe("operations", () => {
  test("GET /healthz and /readyz → 200 without authentication", async () => {
    const health = await server.fetchRaw("/healthz")
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: "ok" })
    expect(health.headers.get("x-request-id")).toMatch(/^req_/)
    const ready = await server.fetchRaw("/readyz")
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: "ready" })
  })

  test("GET /openapi.json: OpenAPI 3.1 with the agents paths, the error envelope, no HttpApiDecodeError", async () => {
    const res = await server.fetchRaw("/openapi.json")
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).not.toContain("HttpApiDecodeError")
    const spec = JSON.parse(text)
    expect(spec.openapi).toStartWith("3.1")
    expect(spec.info.title).toBe("Parley")
    const paths = spec.paths as Record<string, Record<string, unknown>>
    expect(Object.keys(paths["/api/v1/voice/agents"]).sort()).toEqual(["get", "post"])
    expect(Object.keys(paths["/api/v1/voice/agents/{id}"]).sort()).toEqual(["delete", "get", "patch"])
    expect(paths["/api/v1/voice/voices"].get).toBeDefined()
    expect(paths["/healthz"].get).toBeDefined()

    // the create endpoint documents its 400 as the envelope
    const post = paths["/api/v1/voice/agents"].post as { responses: Record<string, unknown> }
    expect(JSON.stringify(post.responses["400"])).toContain("invalid_request")
    expect(JSON.stringify(post.responses["401"])).toContain("missing_authorization_header")
    const get = paths["/api/v1/voice/agents/{id}"].get as { responses: Record<string, unknown> }
    expect(JSON.stringify(get.responses["404"])).toContain("voice_agent_not_found")

    // each error schema is the envelope {error: {type, code, message, request_id, param?, issues?}}
    const schemas = spec.components.schemas as Record<string, { properties?: Record<string, unknown> }>
    for (const code of [
      "invalid_request",
      "invalid_request_body",
      "invalid_json_body",
      "voice_session_not_found",
      "voice_agent_not_found",
      "internal_error",
    ]) {
      const schema = schemas[code] as {
        required: Array<string>
        properties: { error: { required: Array<string>; properties: Record<string, unknown> } }
      }
      expect(schema.required).toEqual(["error"])
      expect(Object.keys(schema.properties.error.properties).sort()).toEqual(
        ["code", "issues", "message", "param", "request_id", "type"].sort(),
      )
      expect(schema.properties.error.required.sort()).toEqual(["code", "message", "request_id", "type"])
    }
    // the bounds are part of the documented request schema
    expect(JSON.stringify(schemas.CreateVoiceAgent)).toContain('"maxLength":16000')
  })

  test("GET /docs serves the reference as HTML with no external scripts", async () => {
    const res = await server.fetchRaw("/docs")
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/html")
    const html = await res.text()
    // booleans, not toContain: a failure would print the 3 MB inline bundle
    expect(html.startsWith("<!doctype html>")).toBe(true)
    expect(html.includes("/api/v1/voice/agents")).toBe(true)
    expect(html.match(/<script[^>]*\bsrc\s*=[^>]*>/gi)).toBeNull()
    expect(html.includes("HttpApiDecodeError")).toBe(false)
  })
})
