/**
 * Property-based input tests over every endpoint (fast-check): generated invalid, boundary and hostile
 * requests never get a 5xx, every error is the one envelope, a rejected request stores nothing, and
 * valid bodies at the SPEC §5/§6 bounds round-trip. PROPERTY_SEED and PROPERTY_RUNS (runs per
 * property) reproduce and size it; fast-check prints the seed and path of a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Schema } from "effect"
import fc from "fast-check"
import { AgentFromRow } from "../src/Agents/Repo.ts"
import { ErrorType } from "../src/Domain/Errors.ts"
import { Session } from "../src/Domain/Session.ts"
import { StoredSession } from "../src/Sessions/Repo.ts"
import {
  AGENT_BASE,
  anyText,
  badAuthorization,
  expectedAgent,
  headerText,
  invalidAdmin,
  invalidAgentCreate,
  invalidAgentPatch,
  invalidComplete,
  invalidStart,
  type Json,
  junkId,
  normalized,
  queryString,
  setIn,
  toJson,
  unknownUuid,
  validAgent,
  validComplete,
  validPatch,
  validStart,
  valueAt,
  withBadBytes,
  withKey,
} from "./support/arbitraries.ts"
import { agentRow, query } from "./support/rows.ts"
import { ADMIN_TOKEN, startServer, type TestServer } from "./support/server.ts"
import { createAgent, sessionRow } from "./support/sessions.ts"

const fromEnv = (name: string, fallback: number) => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`)
  return n
}
const RUNS = { seed: fromEnv("PROPERTY_SEED", 4242), numRuns: fromEnv("PROPERTY_RUNS", 25) }

const AGENTS = "/api/v1/voice/agents"
const SESSIONS = "/api/v1/voice/sessions"
const VOICES = "/api/v1/voice/voices"
const WEBHOOK = "/api/v1/voice/webhooks/livekit"
const ADMIN = `Bearer ${ADMIN_TOKEN}`
const COMPLETE = { transcript: [{ role: "user", text: "hello" }], duration_seconds: 5 }

let s: TestServer
/** Tenant A (the caller) and B (another organization), each with an agent and sessions. */
let a: { orgId: string; apiKey: string; keyId: string; revokedKey: string }
let b: { orgId: string; apiKey: string }
/** A's agent and active session, never changed by a rejected request; `done` is completed. */
let agent: string
let session: string
let done: string
/** B's agent and session, never reachable with A's key. */
let agentB: string
let sessionB: string
/** An agent of A that valid PATCHes may change (outside the snapshot). */
let scratch: string
/** A webhook signed for one body, to pair with others. */
let signed: { body: string; authorization: string }
/** Object.prototype's own properties before any request. */
let prototypeNames: Array<string>

// ---------------------------------------------------------------------------------------------
// Requests and the envelope

interface Answer {
  readonly status: number
  readonly body: Json
}

interface Send {
  readonly body?: unknown
  readonly apiKey?: string | undefined
  readonly authorization?: string | undefined
  readonly headers?: Record<string, string>
}

const ERROR_TYPES: ReadonlyArray<string> = ErrorType.literals
const ENVELOPE_KEYS = ["type", "code", "message", "request_id", "param", "issues"]

/** Every answer: below 500, JSON, and a non-2xx one is exactly the error envelope. */
const send = async (method: string, path: string, init: Send = {}): Promise<Answer> => {
  const headers = new Headers(init.headers)
  if (init.authorization !== undefined) headers.set("authorization", init.authorization)
  const body =
    init.body === undefined || init.body instanceof Uint8Array || typeof init.body === "string"
      ? init.body
      : toJson(init.body)
  if (body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json")
  const res = await s.fetchRaw(path, { method, headers, body, apiKey: init.apiKey })
  const text = await res.text()
  const what = `${method} ${path.slice(0, 200)} → ${res.status} ${text.slice(0, 300)}`
  expect({ what, server_error: res.status >= 500 }).toEqual({ what, server_error: false })
  const requestId = res.headers.get("x-request-id")
  expect({ what, requestId: typeof requestId }).toEqual({ what, requestId: "string" })
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error(`not JSON: ${what}`)
  }
  if (res.status >= 300) {
    expect(res.headers.get("content-type")).toContain("application/json")
    expectEnvelope(parsed, requestId as string, what)
  }
  return { status: res.status, body: parsed as Json }
}

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

const expectEnvelope = (body: unknown, requestId: string, what: string) => {
  expect({ what, keys: isObject(body) ? Object.keys(body) : body }).toEqual({ what, keys: ["error"] })
  const error = (body as { error: unknown }).error
  expect(isObject(error)).toBe(true)
  const e = error as Json
  for (const key of Object.keys(e)) expect(ENVELOPE_KEYS).toContain(key)
  expect(ERROR_TYPES).toContain(e.type as string)
  expect(e.code).toBeString()
  expect(e.code as string).toMatch(/^[a-z_]+$/)
  expect(e.message).toBeString()
  expect((e.message as string).length).toBeGreaterThan(0)
  expect(e.request_id).toBe(requestId)
  if ("param" in e) expect(e.param).toBeString()
  if ("issues" in e) {
    expect(Array.isArray(e.issues)).toBe(true)
    for (const issue of e.issues as Array<unknown>) {
      expect(isObject(issue) && Object.keys(issue).sort()).toEqual(["message", "path"])
      expect((issue as Json).path).toBeString()
      expect((issue as Json).message).toBeString()
    }
  }
}

const expectStatus = (answer: Answer, status: number, what: unknown) =>
  expect({ what, status: answer.status, body: answer.status === status ? undefined : answer.body }).toEqual({
    what,
    status,
    body: undefined,
  })

const is4xx = (answer: Answer) => answer.status >= 400 && answer.status < 500

// ---------------------------------------------------------------------------------------------
// What is stored

const Snapshot = Schema.Struct({ state: Schema.Record({ key: Schema.String, value: Schema.Unknown }) })

/** Row counts and the rows a rejected request must leave alone, in one query. */
const snapshot = async () => {
  const rows = await query(
    s,
    Snapshot,
    (sql) => sql`SELECT json_build_object(
      'agents_a', (SELECT count(*) FROM agents WHERE org_id = ${a.orgId}),
      'agents_b', (SELECT count(*) FROM agents WHERE org_id = ${b.orgId}),
      'sessions_a', (SELECT count(*) FROM sessions WHERE org_id = ${a.orgId}),
      'sessions_b', (SELECT count(*) FROM sessions WHERE org_id = ${b.orgId}),
      'orgs', (SELECT count(*) FROM organizations),
      'keys', (SELECT count(*) FROM api_keys),
      'revoked', (SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL),
      'webhook_events', (SELECT count(*) FROM webhook_events),
      'agent', (SELECT row_to_json(t) FROM agents t WHERE id = ${agent}),
      'agent_b', (SELECT row_to_json(t) FROM agents t WHERE id = ${agentB}),
      'session', (SELECT row_to_json(t) FROM sessions t WHERE id = ${session}),
      'session_b', (SELECT row_to_json(t) FROM sessions t WHERE id = ${sessionB}),
      'done', (SELECT row_to_json(t) FROM sessions t WHERE id = ${done})
    ) AS state`,
  )
  return rows[0].state
}

/** The agent as GET returns it, checked against its stored row. */
const storedAgent = async (id: string): Promise<Json> => {
  const got = await send("GET", `${AGENTS}/${id}`, { apiKey: a.apiKey })
  expectStatus(got, 200, id)
  const data = got.body.data as Json
  expect(data).toEqual(normalized(Schema.decodeUnknownSync(AgentFromRow)(await agentRow(s, id))) as Json)
  return data
}

const SESSION_FIELDS = Object.keys(Session.fields)

/** The session as GET returns it (without waiting), checked against its stored row. */
const storedSession = async (id: string): Promise<Json> => {
  const got = await send("GET", `${SESSIONS}/${id}?wait_for_completion=false`, { apiKey: a.apiKey })
  expectStatus(got, 200, id)
  const row = Schema.decodeUnknownSync(StoredSession)(await sessionRow(s, id)) as unknown as Json
  const data = got.body.data as Json
  expect(data).toEqual(normalized(Object.fromEntries(SESSION_FIELDS.map((k) => [k, row[k]]))) as Json)
  return data
}

const expectPrototypesClean = () => {
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeNames)
  expect(({} as Json).polluted).toBeUndefined()
  expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false)
}

// ---------------------------------------------------------------------------------------------
// The world the properties run in

const startOne = async (apiKey: string, agentId: string) => {
  const started = await send("POST", SESSIONS, {
    apiKey,
    body: { agent_id: agentId, participant: { identity: "user_1", name: "Ann" } },
  })
  expectStatus(started, 201, "fixture session")
  return (started.body.data as Json).session_id as string
}

const admin = (method: string, path: string, body?: unknown) =>
  send(method, path, { authorization: ADMIN, body })

beforeAll(async () => {
  prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort()
  s = await startServer()
  const tenantA = await s.newTenant()
  const tenantB = await s.newTenant()
  const extra = await admin("POST", `/admin/v1/orgs/${tenantA.orgId}/api_keys`, { name: "revoked" })
  const revoked = extra.body.data as Json
  expectStatus(await admin("DELETE", `/admin/v1/api_keys/${revoked.key_id}`), 200, "revoke")
  a = { ...tenantA, revokedKey: revoked.api_key as string }
  b = tenantB
  agent = await createAgent(s, a.apiKey, AGENT_BASE)
  scratch = await createAgent(s, a.apiKey)
  session = await startOne(a.apiKey, agent)
  done = await startOne(a.apiKey, agent)
  expectStatus(
    await send("POST", `${SESSIONS}/${done}/complete`, { apiKey: a.apiKey, body: COMPLETE }),
    200,
    "done",
  )
  agentB = await createAgent(s, b.apiKey)
  sessionB = await startOne(b.apiKey, agentB)
  signed = await s.livekit.signWebhook({ event: "room_finished", room: { name: `voice_${session}` } })
})
afterAll(() => s.dispose())

const JSON_TYPES = fc.constantFrom(
  "application/json",
  "application/json; charset=utf-8",
  "Application/JSON",
  "application/vnd.api+json",
)

// ---------------------------------------------------------------------------------------------

describe("invalid bodies are 400 and store nothing", () => {
  test("POST /agents", async () => {
    await fc.assert(
      fc.asyncProperty(invalidAgentCreate, JSON_TYPES, async (body, type) => {
        const before = await snapshot()
        const answer = await send("POST", AGENTS, {
          apiKey: a.apiKey,
          body,
          headers: { "content-type": type },
        })
        expectStatus(answer, 400, toJson(body).slice(0, 300))
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })

  test("PATCH /agents/:id", async () => {
    await fc.assert(
      fc.asyncProperty(invalidAgentPatch, async (body) => {
        const before = await snapshot()
        expectStatus(await send("PATCH", `${AGENTS}/${agent}`, { apiKey: a.apiKey, body }), 400, toJson(body))
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })

  test("POST /sessions: no row, no room, no token", async () => {
    await fc.assert(
      fc.asyncProperty(invalidStart(agent), async (body) => {
        const before = await snapshot()
        const calls = s.livekit.requests.length + s.gemini.requests.length
        expectStatus(
          await send("POST", SESSIONS, { apiKey: a.apiKey, body }),
          400,
          toJson(body).slice(0, 300),
        )
        expect(s.livekit.requests.length + s.gemini.requests.length).toBe(calls)
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })

  test("POST /sessions/:id/complete: the session stays active, no transcript", async () => {
    await fc.assert(
      fc.asyncProperty(invalidComplete, async (body) => {
        const before = await snapshot()
        const answer = await send("POST", `${SESSIONS}/${session}/complete`, { apiKey: a.apiKey, body })
        expectStatus(answer, 400, toJson(body).slice(0, 300))
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })

  test("POST /admin/v1/orgs and /admin/v1/orgs/:id/api_keys", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          invalidAdmin(true).map((body) => ["/admin/v1/orgs", body] as const),
          invalidAdmin(false).map((body) => [`/admin/v1/orgs/${a.orgId}/api_keys`, body] as const),
        ),
        async ([path, body]) => {
          const before = await snapshot()
          expectStatus(await admin("POST", path, body), 400, toJson(body))
          expect(await snapshot()).toEqual(before)
        },
      ),
      RUNS,
    )
  })
})

// ---------------------------------------------------------------------------------------------

interface IdRoute {
  readonly method: string
  readonly path: (id: string) => string
  readonly kind: "agent" | "session" | "admin"
  readonly body?: unknown
}

const ID_ROUTES: ReadonlyArray<IdRoute> = [
  { method: "GET", path: (id) => `${AGENTS}/${id}`, kind: "agent" },
  { method: "GET", path: (id) => `${AGENTS}/${id}/preview`, kind: "agent" },
  { method: "PATCH", path: (id) => `${AGENTS}/${id}`, kind: "agent", body: { name: "Renamed" } },
  { method: "DELETE", path: (id) => `${AGENTS}/${id}`, kind: "agent" },
  { method: "GET", path: (id) => `${SESSIONS}/${id}?wait_for_completion=false`, kind: "session" },
  { method: "POST", path: (id) => `${SESSIONS}/${id}/complete`, kind: "session", body: COMPLETE },
  { method: "GET", path: (id) => `/admin/v1/orgs/${id}/api_keys`, kind: "admin" },
  { method: "POST", path: (id) => `/admin/v1/orgs/${id}/api_keys`, kind: "admin", body: { name: "k" } },
  { method: "DELETE", path: (id) => `/admin/v1/api_keys/${id}`, kind: "admin" },
]

type PathId = { readonly id: string; readonly missing: boolean }

/** Ids that must answer 404 (`missing`): unknown UUIDs, B's resources, A's of another kind. */
const idsFor = (kind: IdRoute["kind"]): fc.Arbitrary<PathId> => {
  const missing = (ids: ReadonlyArray<string>) =>
    fc.tuple(fc.constantFrom(...ids), fc.boolean()).map(([id, upper]) => ({
      id: upper ? id.toUpperCase() : id,
      missing: true,
    }))
  const foreign =
    kind === "agent"
      ? [agentB, session, done, sessionB, a.orgId]
      : kind === "session"
        ? [sessionB, agent, agentB, a.orgId]
        : [agent, session]
  return fc.oneof(
    junkId.map((id) => ({ id, missing: false })),
    unknownUuid.map((id) => ({ id, missing: true })),
    missing(foreign),
  )
}

const routeAndId = fc
  .constantFrom(...ID_ROUTES.keys())
  .chain((i) => idsFor(ID_ROUTES[i].kind).map((id) => [ID_ROUTES[i], id] as const))

describe("hostile requests never reach another tenant or a 5xx", () => {
  test("path ids: junk, broken escapes, unknown and other tenants' ids", async () => {
    await fc.assert(
      fc.asyncProperty(routeAndId, async ([route, { id, missing }]) => {
        const before = await snapshot()
        const path = route.path(id)
        const answer = await send(route.method, path, {
          ...(route.kind === "admin" ? { authorization: ADMIN } : { apiKey: a.apiKey }),
          body: route.body,
        })
        if (missing) expectStatus(answer, 404, `${route.method} ${path}`)
        // a GET of a junk id may land on another route (`.` segments): any answer but a 5xx
        else if (route.method !== "GET")
          expect({ path, client_error: is4xx(answer) }).toEqual({ path, client_error: true })
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })

  const QUERY_ROUTES = (): ReadonlyArray<readonly [string, Send]> => [
    [AGENTS, { apiKey: a.apiKey }],
    [VOICES, { apiKey: a.apiKey }],
    [`${AGENTS}/${agent}`, { apiKey: a.apiKey }],
    [`${AGENTS}/${agent}/preview`, { apiKey: a.apiKey }],
    // a completed session: even wait_for_completion=true answers at once
    [`${SESSIONS}/${done}`, { apiKey: a.apiKey }],
    [SESSIONS, { apiKey: a.apiKey }],
    ["/admin/v1/orgs", { authorization: ADMIN }],
    [`/admin/v1/orgs/${a.orgId}/api_keys`, { authorization: ADMIN }],
  ]

  test("query strings: broken escapes, repeated keys, long values, odd X-Request-Ids", async () => {
    const routes = QUERY_ROUTES()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        queryString,
        fc.option(headerText(140), { nil: undefined }),
        async ([path, init], query, requestId) => {
          const before = await snapshot()
          const headers: Record<string, string> = requestId === undefined ? {} : { "x-request-id": requestId }
          const answer = await send("GET", `${path}${query}`, { ...init, headers })
          if (answer.status < 300) expect(answer.status).toBe(200)
          expect(await snapshot()).toEqual(before)
        },
      ),
      RUNS,
    )
  })

  test("credentials: missing, malformed, unknown, revoked, or of the other API → 401, nothing done", async () => {
    const api: ReadonlyArray<readonly [string, string, unknown]> = [
      ["POST", AGENTS, AGENT_BASE],
      ["GET", AGENTS, undefined],
      ["GET", VOICES, undefined],
      ["PATCH", `${AGENTS}/${agent}`, { name: "Hijacked" }],
      ["DELETE", `${AGENTS}/${agent}`, undefined],
      ["GET", `${AGENTS}/${agent}/preview`, undefined],
      ["POST", SESSIONS, { agent_id: agent, participant: { identity: "u" } }],
      ["GET", `${SESSIONS}/${session}`, undefined],
      ["GET", SESSIONS, undefined],
      ["POST", `${SESSIONS}/${session}/complete`, COMPLETE],
    ]
    const adminRoutes: ReadonlyArray<readonly [string, string, unknown]> = [
      ["POST", "/admin/v1/orgs", { name: "Intruder" }],
      ["GET", "/admin/v1/orgs", undefined],
      ["POST", `/admin/v1/orgs/${a.orgId}/api_keys`, { name: "stolen" }],
      ["GET", `/admin/v1/orgs/${a.orgId}/api_keys`, undefined],
      ["DELETE", `/admin/v1/api_keys/${a.keyId}`, undefined],
    ]
    const request = fc.oneof(
      fc.tuple(
        fc.constantFrom(...api),
        fc.oneof(badAuthorization, fc.constantFrom(`Bearer ${a.revokedKey}`, ADMIN, a.revokedKey)),
      ),
      fc.tuple(
        fc.constantFrom(...adminRoutes),
        fc.oneof(badAuthorization, fc.constant(`Bearer ${a.apiKey}`)),
      ),
    )
    await fc.assert(
      fc.asyncProperty(request, async ([[method, path, body], authorization]) => {
        const before = await snapshot()
        expectStatus(
          await send(method, path, { authorization, body }),
          401,
          `${method} ${path} ${authorization}`,
        )
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })

  test("LiveKit webhook: unsigned, badly signed or re-bodied deliveries → 401 webhook_verification_failed", async () => {
    const jwtLike = fc
      .array(fc.base64String({ maxLength: 40 }), { minLength: 3, maxLength: 3 })
      .map((parts) => parts.map((p) => p.replaceAll("=", "")).join("."))
    const body = fc.oneof(
      anyText(0, 200),
      fc.uint8Array({ maxLength: 200 }),
      fc.constant(signed.body).chain((text) => withBadBytes(text)),
      fc.string({ maxLength: 3 }).map((suffix) => `${signed.body} ${suffix}`),
      fc.constant(JSON.stringify(JSON.parse(signed.body), null, 1)),
    )
    const authorization = fc.oneof(
      badAuthorization,
      jwtLike,
      fc.constantFrom(signed.authorization, `Bearer ${signed.authorization}`, `${signed.authorization}x`),
    )
    const type = fc.constantFrom("application/webhook+json", "application/json", "text/plain")
    await fc.assert(
      fc.asyncProperty(body, authorization, type, async (payload, auth, contentType) => {
        const before = await snapshot()
        const answer = await send("POST", WEBHOOK, {
          body: payload,
          authorization: auth,
          headers: { "content-type": contentType },
        })
        expectStatus(answer, 401, { payload: String(payload).slice(0, 100), auth })
        expect((answer.body.error as Json).code).toBe("webhook_verification_failed")
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })
})

// ---------------------------------------------------------------------------------------------

describe("bodies that are not UTF-8", () => {
  /** A session for the completes to name (none is accepted, so one is enough). */
  let utf8Session: string | undefined

  test("invalid bytes → 400 invalid_json_body, nothing stored", async () => {
    type Target = {
      readonly kind: "agent" | "patch" | "session" | "complete" | "org"
      readonly method: string
      readonly body: Json
      /** The snapshot count an accepted request adds one to. */
      readonly grows?: string
    }
    const targets: ReadonlyArray<Target> = [
      { kind: "agent", method: "POST", body: AGENT_BASE, grows: "agents_a" },
      { kind: "patch", method: "PATCH", body: { name: "Scratch", metadata: { k: "v" } } },
      {
        kind: "session",
        method: "POST",
        body: { agent_id: agent, participant: { identity: "u", name: "Ann" } },
        grows: "sessions_a",
      },
      { kind: "complete", method: "POST", body: COMPLETE },
      { kind: "org", method: "POST", body: { name: "Org" }, grows: "orgs" },
    ]
    const pathOf = (kind: Target["kind"], completing: string) =>
      ({
        agent: AGENTS,
        patch: `${AGENTS}/${scratch}`,
        session: SESSIONS,
        complete: `${SESSIONS}/${completing}/complete`,
        org: "/admin/v1/orgs",
      })[kind]
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...targets)
          .chain((t) => withBadBytes(toJson(t.body)).map((bytes) => [t, bytes] as const)),
        JSON_TYPES,
        async ([target, bytes], type) => {
          utf8Session ??= await startOne(a.apiKey, agent)
          const completing = utf8Session
          const before = await snapshot()
          const answer = await send(target.method, pathOf(target.kind, completing), {
            body: bytes,
            headers: { "content-type": type },
            ...(target.kind === "org" ? { authorization: ADMIN } : { apiKey: a.apiKey }),
          })
          // refused as a whole: JSON is UTF-8, and replacing the bad bytes would store something else
          expectStatus(answer, 400, `${target.kind} ${type}`)
          expect(answer.body).toMatchObject({ error: { code: "invalid_json_body" } })
          expect(await snapshot()).toEqual(before)
        },
      ),
      RUNS,
    )
  })

  test("a webhook body with invalid bytes no longer matches its signature", async () => {
    await fc.assert(
      fc.asyncProperty(withBadBytes(signed.body), async (bytes) => {
        const before = await snapshot()
        const answer = await send("POST", WEBHOOK, {
          body: bytes,
          authorization: signed.authorization,
          headers: { "content-type": "application/webhook+json" },
        })
        expectStatus(answer, 401, "webhook")
        expect(await snapshot()).toEqual(before)
      }),
      RUNS,
    )
  })
})

// ---------------------------------------------------------------------------------------------

/**
 * Where a prototype-pollution key goes: `strict` objects reject unknown keys (400); `record` ones
 * (metadata, output_schema, output_schema_strict's properties, context) store any key.
 */
interface Placement {
  readonly route: "agent" | "patch" | "session" | "complete" | "org"
  readonly path: ReadonlyArray<string | number>
  readonly kind: "strict" | "record"
}

const STRICT_SCHEMA = { type: "object", properties: { a: { type: "string" } } }

const PLACEMENTS: ReadonlyArray<Placement> = [
  ...(["agent", "patch"] as const).flatMap(
    (route): Array<Placement> => [
      { route, path: [], kind: "strict" },
      { route, path: ["behaviors"], kind: "strict" },
      { route, path: ["voice"], kind: "strict" },
      { route, path: ["questions", 0], kind: "strict" },
      // unsupported keywords are rejected (SPEC §5)
      { route, path: ["output_schema_strict"], kind: "strict" },
      { route, path: ["metadata"], kind: "record" },
      { route, path: ["output_schema"], kind: "record" },
      { route, path: ["output_schema_strict", "properties"], kind: "record" },
    ],
  ),
  { route: "session", path: [], kind: "strict" },
  { route: "session", path: ["participant"], kind: "strict" },
  { route: "session", path: ["voice"], kind: "strict" },
  { route: "session", path: ["context"], kind: "record" },
  { route: "session", path: ["context", "nested"], kind: "record" },
  { route: "complete", path: [], kind: "strict" },
  { route: "complete", path: ["transcript", 0], kind: "strict" },
  { route: "org", path: [], kind: "strict" },
]

const POLLUTION_VALUES: ReadonlyArray<unknown> = [
  { polluted: "yes" },
  { prototype: { polluted: "yes" } },
  { type: "string" },
  "text",
  "yes",
  [{ polluted: "yes" }],
  null,
  1,
]

const pollution = fc.tuple(
  fc.constantFrom(...PLACEMENTS),
  fc.constantFrom("__proto__", "constructor", "prototype"),
  fc.constantFrom(...POLLUTION_VALUES),
)

describe("prototype-pollution keys", () => {
  test("never pollute Object.prototype; strict objects reject them; stored ones read back", async () => {
    const bases = (): Record<Placement["route"], readonly [string, string, Json]> => ({
      agent: ["POST", AGENTS, { ...AGENT_BASE, output_schema_strict: STRICT_SCHEMA }],
      patch: ["PATCH", `${AGENTS}/${scratch}`, { ...AGENT_BASE, output_schema_strict: STRICT_SCHEMA }],
      session: [
        "POST",
        SESSIONS,
        { agent_id: agent, participant: { identity: "u" }, voice: { name: "Kore" }, context: { nested: {} } },
      ],
      complete: ["POST", `${SESSIONS}/${session}/complete`, { ...COMPLETE }],
      org: ["POST", "/admin/v1/orgs", { name: "Org" }],
    })
    await fc.assert(
      fc.asyncProperty(pollution, async ([placement, key, value]) => {
        const [method, path, base] = bases()[placement.route]
        const clean = JSON.parse(JSON.stringify(base)) as Json
        const body = setIn(
          clean,
          placement.path,
          withKey(valueAt(clean, placement.path) as object, key, value),
        )
        const before = await snapshot()
        const answer = await send(method, path, {
          body: toJson(body),
          ...(placement.route === "org" ? { authorization: ADMIN } : { apiKey: a.apiKey }),
        })
        expectPrototypesClean()
        const what = `${method} ${path} ${toJson(body).slice(0, 300)}`
        // A `__proto__` key is refused anywhere in a body: decoders copy keys by assignment, which
        // would set the copy's prototype (and drop what the schema was to check) rather than a key.
        if (key === "__proto__") {
          expectStatus(answer, 400, what)
          expect(await snapshot()).toEqual(before)
          return
        }
        if (placement.kind === "strict") expectStatus(answer, 400, what)
        if (answer.status >= 300) {
          expect(await snapshot()).toEqual(before)
          return
        }
        const data = answer.body.data as Json
        const stored =
          placement.route === "agent"
            ? await storedAgent(data.agent_id as string)
            : placement.route === "patch"
              ? await storedAgent(scratch)
              : await storedSession(data.session_id as string)
        expect({ what, stored: valueAt(stored, [...placement.path, key]) }).toEqual({
          what,
          stored: normalized(value),
        })
      }),
      RUNS,
    )
    expectPrototypesClean()
  })
})

// ---------------------------------------------------------------------------------------------

describe("valid bodies at the bounds are accepted and stored as GET shows them", () => {
  test("POST /agents", async () => {
    await fc.assert(
      fc.asyncProperty(validAgent, async (input) => {
        const created = await send("POST", AGENTS, { apiKey: a.apiKey, body: input })
        expectStatus(created, 200, "create")
        const stored = await storedAgent((created.body.data as Json).agent_id as string)
        const expected = expectedAgent(input)
        expect(Object.fromEntries(Object.keys(expected).map((k) => [k, stored[k]]))).toEqual(expected)
        expect(stored.is_active).toBe(true)
      }),
      RUNS,
    )
  })

  test("PATCH /agents/:id replaces each given field", async () => {
    await fc.assert(
      fc.asyncProperty(validPatch, async (patch) => {
        const previous = await storedAgent(scratch)
        const updated = await send("PATCH", `${AGENTS}/${scratch}`, { apiKey: a.apiKey, body: patch })
        expectStatus(updated, 200, "patch")
        const stored = await storedAgent(scratch)
        expect(stored).toEqual(updated.body.data as Json)
        const full = expectedAgent({ ...previous, ...patch } as Parameters<typeof expectedAgent>[0])
        for (const key of Object.keys(patch)) {
          if (key === "is_active") expect(stored.is_active).toBe(patch.is_active as boolean)
          else expect({ key, value: stored[key] }).toEqual({ key, value: full[key] })
        }
      }),
      RUNS,
    )
  })

  test("POST /sessions, then POST /sessions/:id/complete", async () => {
    await fc.assert(
      fc.asyncProperty(validStart, validComplete, async (start, complete) => {
        const started = await send("POST", SESSIONS, {
          apiKey: a.apiKey,
          body: { agent_id: agent, ...start },
        })
        expectStatus(started, 201, "start")
        const id = (started.body.data as Json).session_id as string
        const stored = await storedSession(id)
        const participant = start.participant as { identity: string; name?: string }
        const pick = (session: Json, keys: ReadonlyArray<string>) =>
          Object.fromEntries(keys.map((k) => [k, session[k]]))
        expect(
          pick(stored, ["status", "participant", "context", "max_duration_seconds", "transcript"]),
        ).toEqual({
          status: "active",
          participant: {
            identity: participant.identity.trim(),
            ...(participant.name === undefined ? {} : { name: participant.name.trim() }),
          },
          context: start.context === undefined ? null : normalized(start.context),
          max_duration_seconds: start.max_duration_seconds ?? null,
          transcript: null,
        })
        expect((stored.expires_at as number) - (stored.created_at as number)).toBe(
          (start.ttl_seconds as number | undefined) ?? 600,
        )
        const completed = await send("POST", `${SESSIONS}/${id}/complete`, {
          apiKey: a.apiKey,
          body: complete,
        })
        expectStatus(completed, 200, "complete")
        const after = await storedSession(id)
        expect(after).toEqual(completed.body.data as Json)
        expect(pick(after, ["status", "transcript", "duration_seconds"])).toEqual({
          status: "completed",
          transcript: normalized(complete.transcript),
          duration_seconds: complete.duration_seconds ?? null,
        })
      }),
      { ...RUNS, numRuns: Math.ceil(RUNS.numRuns / 2) },
    )
  })
})
