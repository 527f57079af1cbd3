/** Shared helpers for the HTTP-level session, long-poll and webhook tests. */
import { Effect, Schema } from "effect"
import { CompletionHub } from "../../src/Sessions/CompletionHub.ts"
import { StoredSession, WebhookEvent } from "../../src/Sessions/Repo.ts"
import { count, query } from "./rows.ts"
import type { TestServer } from "./server.ts"

export type Json = Record<string, unknown>

export interface Reply {
  readonly status: number
  readonly body: Json
  readonly headers: Headers
}

/** Raw JSON call with an API key; `body` is serialized unless it is already a string. */
export const call = async (
  s: TestServer,
  apiKey: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  init: RequestInit = {},
): Promise<Reply> => {
  const response = await s.fetchRaw(path, {
    ...init,
    method,
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  })
  const text = await response.text()
  return { status: response.status, body: text === "" ? {} : JSON.parse(text), headers: response.headers }
}

/** The `data` of a success envelope. */
export const data = (reply: Reply): Json => reply.body.data as Json

/** The `error` of an error envelope. */
export const error = (reply: Reply): Json => reply.body.error as Json

export const createAgent = async (s: TestServer, apiKey: string, overrides: Json = {}): Promise<string> => {
  const reply = await call(s, apiKey, "POST", "/api/v1/voice/agents", {
    name: "Sales qualifier",
    instructions: "Qualify the caller for a plan upgrade.",
    ...overrides,
  })
  if (reply.status !== 200) throw new Error(`agent creation failed: ${JSON.stringify(reply.body)}`)
  return data(reply).agent_id as string
}

export const startSession = (s: TestServer, apiKey: string, body: Json) =>
  call(s, apiKey, "POST", "/api/v1/voice/sessions", body)

/** A tenant with an agent and one active session of it. */
export const activeSession = async (s: TestServer, agent: Json = {}, start: Json = {}) => {
  const { apiKey, orgId } = await s.newTenant()
  const agentId = await createAgent(s, apiKey, agent)
  const started = await startSession(s, apiKey, {
    agent_id: agentId,
    participant: { identity: "user_abc123", name: "Alice" },
    ...start,
  })
  if (started.status !== 201) throw new Error(`session start failed: ${JSON.stringify(started.body)}`)
  return { apiKey, orgId, agentId, sessionId: data(started).session_id as string, started }
}

export const getSession = (s: TestServer, apiKey: string, id: string, query = "", init: RequestInit = {}) =>
  call(s, apiKey, "GET", `/api/v1/voice/sessions/${id}${query}`, undefined, init)

export const completeSession = (s: TestServer, apiKey: string, id: string, body: unknown) =>
  call(s, apiKey, "POST", `/api/v1/voice/sessions/${id}/complete`, body)

export const TRANSCRIPT = [
  { role: "agent", text: "Hi! How can I help you today?", timestamp: 1710000000 },
  { role: "user", text: "I am looking for a Pro plan upgrade.", timestamp: 1710000005 },
  { role: "agent", text: "Great, what is your team size?", timestamp: 1710000008 },
] as const

/** The stored row of a session as the driver returns it, or undefined. */
export const sessionRow = (s: TestServer, id: string) =>
  query(s, Schema.encodedSchema(StoredSession), (sql) => sql`SELECT * FROM sessions WHERE id = ${id}`).then(
    (rows) => rows[0],
  )

/** Sessions of an organization (for "no row was left behind"). */
export const sessionCount = (s: TestServer, orgId: string) =>
  count(s, (sql) => sql`SELECT count(*)::int AS n FROM sessions WHERE org_id = ${orgId}`)

export const webhookEvents = (s: TestServer, eventId: string) =>
  query(s, WebhookEvent, (sql) => sql`SELECT event_id, event FROM webhook_events WHERE event_id = ${eventId}`)

/** How many requests on the server are waiting on the session's completion right now. */
export const waiters = (s: TestServer, id: string) =>
  s.run(Effect.flatMap(CompletionHub, (hub) => hub.waiting(id)))

/** Whether the server's completion hub hears completions published on other instances yet. */
export const listening = (s: TestServer) => s.run(Effect.flatMap(CompletionHub, (hub) => hub.listening))

export { eventually } from "./wait.ts"

/** The claims of a JWT (no verification). */
export const jwtClaims = (token: string): Json =>
  JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"))

export const nowSeconds = () => Math.floor(Date.now() / 1000)

export const UNKNOWN_ID = "6f1c3a52-6a1c-4a43-9f7e-1b2f5b8e2b11"
