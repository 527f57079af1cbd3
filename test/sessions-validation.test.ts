/** Request bounds of the session routes, both sides of every bound (SPEC §3, §6). */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  call,
  completeSession,
  createAgent,
  data,
  error,
  getSession,
  type Json,
  type Reply,
  sessionCount,
  sessionRow,
  startSession,
} from "./support/sessions.ts"

let s: TestServer
beforeAll(async () => {
  s = await startServer()
})
afterAll(() => s.dispose())
beforeEach(() => {
  s.livekit.clear()
  s.gemini.clear()
})

/** A 400 in the envelope: `invalid_request_body` for bodies, `invalid_request` for the query. */
const expectInvalid = (
  reply: Reply,
  param: string | undefined,
  label: string,
  code: "invalid_request_body" | "invalid_request" = "invalid_request_body",
) => {
  expect({ label, status: reply.status }).toEqual({ label, status: 400 })
  const e = error(reply)
  expect({ label, type: e.type, code: e.code, param: e.param }).toEqual({
    label,
    type: "invalid_request_error",
    code,
    param,
  })
  expect(e.request_id).toBe(reply.headers.get("x-request-id") as string)
  const issues = e.issues as Array<{ path: string; message: string }>
  expect(issues.length).toBeGreaterThan(0)
  if (param !== undefined) expect(issues.map((i) => i.path)).toContain(param)
  // Short, readable messages: no schema dumps.
  for (const issue of issues) {
    expect(issue.message.length).toBeLessThan(200)
    expect(issue.message).not.toMatch(/readonly|ReadonlyArray|Expected \{|VoiceSession/)
  }
}

/** A JSON object whose serialized form is exactly `length` characters. */
const contextOfLength = (length: number) => ({ k: "x".repeat(length - 8) })

describe("start body", () => {
  test("every invalid field is 400 invalid_request naming it; nothing is created", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    const base: Json = { agent_id: agentId, participant: { identity: "user_1" } }
    const without = (key: string) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== key))
    const cases: Array<[string, Json, string]> = [
      ["agent_id missing", without("agent_id"), "agent_id"],
      ["agent_id not a UUID", { ...base, agent_id: "aaaaaaaa-bbbb-cccc-dddd" }, "agent_id"],
      ["agent_id a number", { ...base, agent_id: 42 }, "agent_id"],
      ["participant missing", without("participant"), "participant"],
      ["participant a string", { ...base, participant: "alice" }, "participant"],
      ["identity missing", { ...base, participant: { name: "Alice" } }, "participant.identity"],
      ["identity empty", { ...base, participant: { identity: "" } }, "participant.identity"],
      ["identity blank", { ...base, participant: { identity: "   " } }, "participant.identity"],
      ["identity 257", { ...base, participant: { identity: "i".repeat(257) } }, "participant.identity"],
      ["identity a number", { ...base, participant: { identity: 7 } }, "participant.identity"],
      ["name 257", { ...base, participant: { identity: "u", name: "n".repeat(257) } }, "participant.name"],
      ["name a number", { ...base, participant: { identity: "u", name: 1 } }, "participant.name"],
      ["participant extra", { ...base, participant: { identity: "u", email: "a@b.c" } }, "participant.email"],
      ["context an array", { ...base, context: [1, 2] }, "context"],
      ["context a string", { ...base, context: "vip" }, "context"],
      ["context 16001", { ...base, context: contextOfLength(16_001) }, "context"],
      ["ttl 59", { ...base, ttl_seconds: 59 }, "ttl_seconds"],
      ["ttl 3601", { ...base, ttl_seconds: 3601 }, "ttl_seconds"],
      ["ttl fractional", { ...base, ttl_seconds: 600.5 }, "ttl_seconds"],
      ["ttl a string", { ...base, ttl_seconds: "600" }, "ttl_seconds"],
      ["max 59", { ...base, max_duration_seconds: 59 }, "max_duration_seconds"],
      ["max 1801", { ...base, ttl_seconds: 3600, max_duration_seconds: 1801 }, "max_duration_seconds"],
      ["max fractional", { ...base, max_duration_seconds: 120.5 }, "max_duration_seconds"],
      ["voice unknown name", { ...base, voice: { name: "Bob" } }, "voice.name"],
      ["voice bad language", { ...base, voice: { language_code: "english" } }, "voice.language_code"],
      ["voice extra field", { ...base, voice: { pitch: 2 } }, "voice.pitch"],
      ["voice a string", { ...base, voice: "Puck" }, "voice"],
      ["unknown field", { ...base, room_name: "mine" }, "room_name"],
    ]
    for (const [label, body, param] of cases) expectInvalid(await startSession(s, apiKey, body), param, label)

    const array = await call(s, apiKey, "POST", "/api/v1/voice/sessions", [base])
    expect(array.status).toBe(400)
    expect(error(array).code).toBe("invalid_request_body")
    const notJson = await call(s, apiKey, "POST", "/api/v1/voice/sessions", "{agent_id:")
    expect(notJson.status).toBe(400)
    expect(error(notJson).code).toBe("invalid_json_body")

    expect(s.livekit.requests).toHaveLength(0)
    expect(s.gemini.requests).toHaveLength(0)
    expect(await sessionCount(s, orgId)).toBe(0)
  })

  test("the inclusive bounds are accepted", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    const cases: Array<[string, Json]> = [
      ["identity 256, name 256", { participant: { identity: "i".repeat(256), name: "n".repeat(256) } }],
      ["identity 1, empty name", { participant: { identity: "i", name: "" } }],
      ["context 16000", { participant: { identity: "u" }, context: contextOfLength(16_000) }],
      ["empty context", { participant: { identity: "u" }, context: {} }],
      ["null context (same as none)", { participant: { identity: "u" }, context: null }],
      ["ttl 60, max 60", { participant: { identity: "u" }, ttl_seconds: 60, max_duration_seconds: 60 }],
      [
        "ttl 3600, max 1800",
        { participant: { identity: "u" }, ttl_seconds: 3600, max_duration_seconds: 1800 },
      ],
      ["voice name only", { participant: { identity: "u" }, voice: { name: "Zubenelgenubi" } }],
      ["voice language only", { participant: { identity: "u" }, voice: { language_code: "pt-BR" } }],
    ]
    for (const [label, body] of cases) {
      const reply = await startSession(s, apiKey, { agent_id: agentId, ...body })
      expect({ label, status: reply.status }).toEqual({ label, status: 201 })
    }
    expect(await sessionCount(s, orgId)).toBe(cases.length)
  })

  test("participant strings are trimmed before they are stored", async () => {
    const { apiKey, sessionId } = await activeSession(
      s,
      {},
      { participant: { identity: "  u_1  ", name: " Bo " } },
    )
    expect(data(await getSession(s, apiKey, sessionId)).participant).toEqual({ identity: "u_1", name: "Bo" })
    expect((await sessionRow(s, sessionId))?.participant).toEqual({ identity: "u_1", name: "Bo" })
  })
})

describe("complete body", () => {
  test("every invalid field is 400 invalid_request naming it; the session stays active", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const entry = { role: "user", text: "hello" }
    const cases: Array<[string, unknown, string | undefined]> = [
      ["transcript missing", { duration_seconds: 10 }, "transcript"],
      ["transcript empty", { transcript: [] }, "transcript"],
      ["transcript 5001", { transcript: Array.from({ length: 5001 }, () => entry) }, "transcript"],
      ["transcript a string", { transcript: "hello" }, "transcript"],
      ["entry a string", { transcript: ["hello"] }, "transcript[0]"],
      ["text empty", { transcript: [{ role: "user", text: "" }] }, "transcript[0].text"],
      [
        "text 32001",
        { transcript: [entry, { role: "agent", text: "t".repeat(32_001) }] },
        "transcript[1].text",
      ],
      ["text missing", { transcript: [{ role: "user" }] }, "transcript[0].text"],
      ["role invalid", { transcript: [{ role: "system", text: "x" }] }, "transcript[0].role"],
      ["role missing", { transcript: [{ text: "x" }] }, "transcript[0].role"],
      ["timestamp negative", { transcript: [{ ...entry, timestamp: -1 }] }, "transcript[0].timestamp"],
      ["timestamp fractional", { transcript: [{ ...entry, timestamp: 1.5 }] }, "transcript[0].timestamp"],
      ["entry extra field", { transcript: [{ ...entry, speaker: "bob" }] }, "transcript[0].speaker"],
      ["duration -1", { transcript: [entry], duration_seconds: -1 }, "duration_seconds"],
      ["duration 86401", { transcript: [entry], duration_seconds: 86_401 }, "duration_seconds"],
      ["duration fractional", { transcript: [entry], duration_seconds: 1.5 }, "duration_seconds"],
      ["duration a string", { transcript: [entry], duration_seconds: "60" }, "duration_seconds"],
      ["unknown field", { transcript: [entry], summary: "x" }, "summary"],
    ]
    for (const [label, body, param] of cases)
      expectInvalid(await completeSession(s, apiKey, sessionId, body), param, label)

    const notJson = await completeSession(s, apiKey, sessionId, '{"transcript": [')
    expect(notJson.status).toBe(400)
    expect(error(notJson).code).toBe("invalid_json_body")
    const wrongType = await s.fetchRaw(`/api/v1/voice/sessions/${sessionId}/complete`, {
      method: "POST",
      apiKey,
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ transcript: [entry] }),
    })
    expect(wrongType.status).toBe(415)
    expect(((await wrongType.json()) as { error: Json }).error.code).toBe("unsupported_media_type")

    expect(await sessionRow(s, sessionId)).toMatchObject({ status: "active", transcript: null })
  })

  test("the inclusive bounds are accepted", async () => {
    const entry = { role: "user", text: "hello" }
    const cases: Array<[string, Json]> = [
      ["1 entry", { transcript: [entry] }],
      ["5000 entries", { transcript: Array.from({ length: 5000 }, (_, i) => ({ ...entry, timestamp: i })) }],
      ["text 1", { transcript: [{ role: "agent", text: "k" }] }],
      ["text 32000", { transcript: [{ role: "agent", text: "t".repeat(32_000) }] }],
      ["timestamp 0, duration 0", { transcript: [{ ...entry, timestamp: 0 }], duration_seconds: 0 }],
      ["duration 86400", { transcript: [entry], duration_seconds: 86_400 }],
    ]
    for (const [label, body] of cases) {
      const { apiKey, sessionId } = await activeSession(s)
      const reply = await completeSession(s, apiKey, sessionId, body)
      expect({ label, status: reply.status }).toEqual({ label, status: 200 })
      const row = await sessionRow(s, sessionId)
      expect(row?.status).toBe("completed")
      expect<unknown>(row?.transcript).toEqual(body.transcript)
      expect(row?.duration_seconds).toBe((body.duration_seconds as number | undefined) ?? null)
    }
  })
})

describe("get query", () => {
  test("timeout_seconds 1–120 and wait_for_completion true/false; anything else is 400", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const cases: Array<[string, string]> = [
      ["?timeout_seconds=0", "timeout_seconds"],
      ["?timeout_seconds=121", "timeout_seconds"],
      ["?timeout_seconds=x", "timeout_seconds"],
      ["?timeout_seconds=1.5", "timeout_seconds"],
      ["?timeout_seconds=-1", "timeout_seconds"],
      ["?wait_for_completion=true&timeout_seconds=0", "timeout_seconds"],
      ["?wait_for_completion=yes", "wait_for_completion"],
      ["?wait_for_completion=1", "wait_for_completion"],
    ]
    for (const [query, param] of cases)
      expectInvalid(await getSession(s, apiKey, sessionId, query), param, query, "invalid_request")
    for (const query of ["?timeout_seconds=1", "?timeout_seconds=120", "?wait_for_completion=false"]) {
      const reply = await getSession(s, apiKey, sessionId, query)
      expect({ query, status: reply.status }).toEqual({ query, status: 200 })
      // Without wait_for_completion nothing waits: 120 s would outlast the test's timeout.
    }
  })
})
