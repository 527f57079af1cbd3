/** Voice sessions over HTTP: start (upstreams, compensation), get, complete and extraction (SPEC §6, §10). */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { TokenVerifier } from "livekit-server-sdk"
import { DEFAULT_EXTRACTION_MODEL, DEFAULT_LIVE_MODEL } from "../src/Config.ts"
import { VoiceAgentNotFound, VoiceSessionNotActive, VoiceSessionNotFound } from "../src/Domain/Errors.ts"
import type { AgentId, SessionId } from "../src/Domain/Ids.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { failure, startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  call,
  completeSession,
  createAgent,
  data,
  error,
  eventually,
  getSession,
  type Json,
  nowSeconds,
  sessionCount,
  sessionRow,
  startSession,
  TRANSCRIPT,
  UNKNOWN_ID,
  waiters,
} from "./support/sessions.ts"

let s: TestServer
/**
 * A server whose upstream calls time out after 1.1 s: ample for a loaded machine's normal answers,
 * and well before the LiveKit SDK's own whole-second abort (2 s) of a request given up on.
 * Tests make an upstream not answer at all (a hold), so only the timeout can end the call.
 */
let slow: TestServer

beforeAll(async () => {
  ;[s, slow] = await Promise.all([startServer(), startServer({ upstreamTimeoutMs: 1100 })])
})
afterAll(async () => {
  await Promise.all([s.dispose(), slow.dispose()])
})
beforeEach(() => {
  for (const server of [s, slow]) {
    server.livekit.clear()
    server.gemini.clear()
  }
})

/** The Pi "Start a session" example request, against a real agent. */
const piExample = (agentId: string) => ({
  agent_id: agentId,
  participant: { identity: "user_abc123", name: "Alice" },
  context: { account_tier: "pro", prior_purchases: 3 },
  ttl_seconds: 900,
  max_duration_seconds: 600,
})

const tokenRequests = (server: TestServer) => server.gemini.requests.filter((r) => r.method === "auth_tokens")
const extractionRequests = (server: TestServer) =>
  server.gemini.requests.filter((r) => r.method === "generateContent")

/** The live setup the SDK sent in the auth_tokens request. */
const liveSetup = (body: unknown) => (body as { bidiGenerateContentSetup: Json }).bidiGenerateContentSetup
const promptOf = (body: unknown) =>
  (body as { contents: Array<{ parts: Array<{ text: string }> }> }).contents
    .flatMap((c) => c.parts.map((p) => p.text))
    .join("\n")

const roomsOf = (server: TestServer, orgId: string) =>
  [...server.livekit.rooms.values()].filter((room) => JSON.parse(room.metadata).org_id === orgId)

const SESSION_FIELDS = [
  "session_id",
  "agent_id",
  "status",
  "participant",
  "context",
  "transcript",
  "results",
  "extraction_warnings",
  "duration_seconds",
  "max_duration_seconds",
  "error_log",
  "metadata",
  "expires_at",
  "created_at",
  "updated_at",
  "completed_at",
].sort()

describe("start", () => {
  test("the Pi example request: 201 with LiveKit and Gemini Live credentials", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    const before = nowSeconds()
    const reply = await startSession(s, apiKey, piExample(agentId))
    const after = nowSeconds()

    expect(reply.status).toBe(201)
    expect(Object.keys(reply.body).sort()).toEqual(["created_at", "data", "id", "object", "status"])
    expect(reply.body).toMatchObject({ object: "voice_session", status: "active" })
    expect(reply.body.id).toBe(reply.headers.get("x-request-id") as string)
    expect(reply.body.created_at as number).toBeWithin(before, after + 1)

    const d = data(reply)
    const sessionId = d.session_id as string
    expect(Object.keys(d).sort()).toEqual(
      [
        "agent_id",
        "connection",
        "expires_at",
        "max_duration_seconds",
        "session_id",
        "system_instruction",
      ].sort(),
    )
    expect(sessionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(d.agent_id).toBe(agentId)
    expect(d.max_duration_seconds).toBe(600)

    // LiveKit: ws URL of the local server and a participant JWT for this room only.
    const connection = d.connection as { livekit: Json; gemini_live: Json }
    expect(connection.livekit.url).toBe(s.livekit.url.replace(/^http:/, "ws:"))
    const claims = await new TokenVerifier(s.livekit.apiKey, s.livekit.apiSecret).verify(
      connection.livekit.token as string,
    )
    expect(claims.sub).toBe("user_abc123")
    expect(claims.name).toBe("Alice")
    expect(claims.video).toEqual({
      room: `voice_${sessionId}`,
      roomJoin: true,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
    })
    // valid for joining as long as the call may last: the enforced cap + grace (30 s), not the 900 s ttl
    expect(claims.exp as number).toBeWithin(before + 630, after + 631)

    // Gemini Live: the constrained endpoint with the token, usable as-is, and the token name.
    expect(connection.gemini_live.token).toMatch(/^auth_tokens\/.+/)
    expect(connection.gemini_live.url).toBe(
      `${s.gemini.url.replace(/^http:/, "ws:")}/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained?access_token=${encodeURIComponent(connection.gemini_live.token as string)}`,
    )

    // The session instruction: the agent's, then the participant name and the context as data.
    const instruction = d.system_instruction as string
    expect(instruction).toContain("Qualify the caller for a plan upgrade.")
    expect(instruction).toContain('Caller name: "Alice"')
    expect(instruction).toContain('"account_tier": "pro"')
    expect(instruction).toContain('"prior_purchases": 3')
    expect(instruction.indexOf("Qualify the caller")).toBeLessThan(instruction.indexOf("Caller name"))

    // The room, as the local LiveKit stored it.
    const room = s.livekit.rooms.get(`voice_${sessionId}`)
    expect(room).toMatchObject({ emptyTimeout: 900, maxParticipants: 4 })
    expect(JSON.parse(room?.metadata ?? "")).toEqual({
      session_id: sessionId,
      agent_id: agentId,
      org_id: orgId,
    })

    // The ephemeral token request: one use, locked model, voice and instruction; its window is the
    // enforced call cap plus CALL_CAP_GRACE_SECONDS (30), which ends before the ttl (test/call-cap.test.ts).
    const tokens = tokenRequests(s)
    expect(tokens).toHaveLength(1)
    expect(tokens[0].version).toBe("v1alpha")
    const body = tokens[0].body as Json
    expect(body.uses).toBe(1)
    expect(Math.floor(Date.parse(body.expireTime as string) / 1000)).toBeWithin(before + 630, after + 631)
    expect(Date.parse(body.newSessionExpireTime as string) / 1000).toBeLessThanOrEqual(after + 631)
    const setup = liveSetup(body)
    expect(setup.model).toBe(`models/${DEFAULT_LIVE_MODEL}`)
    // The default model is native audio: no language code (the agent's language is in the instruction).
    expect(setup.generationConfig).toEqual({
      responseModalities: ["AUDIO"],
      speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: "Puck" } } },
    })
    expect(setup.sessionResumption).toEqual({})
    expect(setup.contextWindowCompression).toEqual({ slidingWindow: {} })
    expect(setup.inputAudioTranscription).toEqual({})
    expect(setup.outputAudioTranscription).toEqual({})
    expect(setup.systemInstruction).toEqual({ parts: [{ text: instruction }], role: "user" })

    // The row, written after both upstreams succeeded.
    const row = await sessionRow(s, sessionId)
    expect(row).toMatchObject({
      org_id: orgId,
      agent_id: agentId,
      status: "active",
      participant: { identity: "user_abc123", name: "Alice" },
      context: { account_tier: "pro", prior_purchases: 3 },
      system_instruction: instruction,
      transcript: null,
      results: null,
      max_duration_seconds: 600,
      completed_at: null,
    })
    expect(row?.expires_at.getTime()).toBe((row?.created_at.getTime() ?? 0) + 900_000)

    // expires_at = created_at + ttl, as GET reports them.
    const got = data(await getSession(s, apiKey, sessionId))
    expect(d.expires_at).toBe(got.expires_at)
    expect(got.expires_at).toBe((got.created_at as number) + 900)
  })

  test("ttl defaults to 600 s and the cap to null; the typed client decodes the response", async () => {
    const { apiKey } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    const client = await s.client(apiKey)
    const before = nowSeconds()
    const started = await Effect.runPromise(
      client.sessions.start({
        payload: { agent_id: agentId as AgentId, participant: { identity: "caller-1" } },
      }),
    )
    expect(started.status).toBe("active")
    expect(started.data.max_duration_seconds).toBeNull()
    const sessionId = started.data.session_id
    expect(s.livekit.rooms.get(`voice_${sessionId}`)?.emptyTimeout).toBe(600)
    const claims = await new TokenVerifier(s.livekit.apiKey, s.livekit.apiSecret).verify(
      started.data.connection.livekit.token,
    )
    expect(claims.sub).toBe("caller-1")
    expect((claims.exp as number) - (claims.nbf as number)).toBe(600)
    // Without a name or context the session instruction is the agent's own.
    const agent = await Effect.runPromise(client.agents.get({ path: { id: agentId as AgentId } }))
    expect(started.data.system_instruction).toBe(agent.data.system_instruction)
    const got = await Effect.runPromise(client.sessions.get({ path: { id: sessionId }, urlParams: {} }))
    expect(got.data.expires_at).toBe(got.data.created_at + 600)
    expect(got.data.created_at).toBeWithin(before, nowSeconds() + 1)
    expect((await sessionRow(s, sessionId))?.max_duration_seconds).toBeNull()
  })

  test("the session voice overrides the agent's; otherwise the agent's voice is locked in", async () => {
    const { apiKey } = await s.newTenant()
    const agentId = await createAgent(s, apiKey, { voice: { name: "Kore", language_code: "de-de" } })
    const setupOf = () => liveSetup(tokenRequests(s).at(-1)?.body)
    const voiceOf = () => (setupOf().generationConfig as Json).speechConfig
    const instructionOf = () => JSON.stringify(setupOf().systemInstruction)

    expect(
      (await startSession(s, apiKey, { agent_id: agentId, participant: { identity: "a" } })).status,
    ).toBe(201)
    // A native-audio model takes no language code: the voice's language is a rule of the instruction,
    // written as a canonical BCP 47 tag.
    expect(voiceOf()).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: "Kore" } } })
    expect(instructionOf()).toContain("Speak de-DE (BCP 47 language tag) for the whole conversation")

    const overridden = await startSession(s, apiKey, {
      agent_id: agentId,
      participant: { identity: "b" },
      voice: { name: "Charon", language_code: "fr-FR" },
    })
    expect(overridden.status).toBe(201)
    expect(voiceOf()).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: "Charon" } } })
    expect(instructionOf()).toContain("Speak fr-FR (BCP 47 language tag)")
    expect(instructionOf()).not.toContain("Speak de-DE")
    expect(data(overridden).system_instruction).toContain("Speak fr-FR")

    // A partial override keeps the agent's other voice setting.
    const nameOnly = await startSession(s, apiKey, {
      agent_id: agentId,
      participant: { identity: "c" },
      voice: { name: "Leda" },
    })
    expect(nameOnly.status).toBe(201)
    expect(voiceOf()).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: "Leda" } } })
    expect(instructionOf()).toContain("Speak de-DE")
  })

  test("max_duration_seconds above the effective ttl is 400 before the agent is looked up", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const cases = [
      { body: { max_duration_seconds: 601 }, ttl: 600 }, // default ttl
      { body: { ttl_seconds: 900, max_duration_seconds: 901 }, ttl: 900 },
      { body: { ttl_seconds: 60, max_duration_seconds: 1800 }, ttl: 60 },
    ]
    for (const { body, ttl } of cases) {
      // An unknown agent id: the ttl rule comes first.
      const reply = await startSession(s, apiKey, {
        agent_id: UNKNOWN_ID,
        participant: { identity: "u" },
        ...body,
      })
      expect(reply.status).toBe(400)
      expect(error(reply)).toMatchObject({
        type: "invalid_request_error",
        code: "voice_session_ttl_too_short",
        param: "ttl_seconds",
        request_id: reply.headers.get("x-request-id") as string,
      })
      expect(error(reply).message as string).toContain(`(${ttl})`)
    }
    expect(s.livekit.requests).toHaveLength(0)
    expect(s.gemini.requests).toHaveLength(0)
    expect(await sessionCount(s, orgId)).toBe(0)
  })

  test("the cap is body ?? agent ?? null, and an agent cap above the ttl is the same 400", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const capped = await createAgent(s, apiKey, { behaviors: { max_duration_seconds: 900 } })
    const participant = { identity: "u" }

    const tooShort = await startSession(s, apiKey, { agent_id: capped, participant })
    expect(tooShort.status).toBe(400)
    expect(error(tooShort)).toMatchObject({ code: "voice_session_ttl_too_short", param: "ttl_seconds" })
    expect(s.livekit.requests).toHaveLength(0)

    const fromAgent = await startSession(s, apiKey, { agent_id: capped, participant, ttl_seconds: 900 })
    expect(fromAgent.status).toBe(201)
    expect(data(fromAgent).max_duration_seconds).toBe(900)

    // The body's cap wins, even when the agent's alone would not fit the ttl.
    const fromBody = await startSession(s, apiKey, {
      agent_id: capped,
      participant,
      max_duration_seconds: 300,
    })
    expect(fromBody.status).toBe(201)
    expect(data(fromBody).max_duration_seconds).toBe(300)
    expect((await sessionRow(s, data(fromBody).session_id as string))?.max_duration_seconds).toBe(300)

    // max_duration_seconds equal to the ttl is fine.
    const equal = await startSession(s, apiKey, {
      agent_id: capped,
      participant,
      ttl_seconds: 60,
      max_duration_seconds: 60,
    })
    expect(equal.status).toBe(201)
    expect(data(equal).max_duration_seconds).toBe(60)
    expect(await sessionCount(s, orgId)).toBe(3)
  })

  test("unknown, other organization's and soft-deleted agents are 404 voice_agent_not_found", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const other = await s.newTenant()
    const foreign = await createAgent(s, other.apiKey)
    const deleted = await createAgent(s, apiKey)
    expect((await call(s, apiKey, "DELETE", `/api/v1/voice/agents/${deleted}`)).status).toBe(200)

    for (const agentId of [UNKNOWN_ID, foreign, deleted]) {
      const reply = await startSession(s, apiKey, { agent_id: agentId, participant: { identity: "u" } })
      expect(reply.status).toBe(404)
      expect(error(reply)).toMatchObject({
        type: "not_found_error",
        code: "voice_agent_not_found",
        param: "agent_id",
      })
      expect(error(reply).message as string).toContain(agentId)
    }
    const client = await s.client(apiKey)
    const typed = await failure(
      client.sessions.start({ payload: { agent_id: foreign as AgentId, participant: { identity: "u" } } }),
    )
    expect(typed).toBeInstanceOf(VoiceAgentNotFound)
    expect(s.livekit.requests).toHaveLength(0)
    expect(s.gemini.requests).toHaveLength(0)
    expect(await sessionCount(s, orgId)).toBe(0)
    expect(await sessionCount(s, other.orgId)).toBe(0)
  })

  test("requires an API key", async () => {
    const reply = await startSession(s, undefined as unknown as string, {
      agent_id: UNKNOWN_ID,
      participant: { identity: "u" },
    })
    expect(reply.status).toBe(401)
    expect(error(reply).code).toBe("missing_authorization_header")
  })
})

describe("start: upstream failures", () => {
  test("LiveKit CreateRoom failing → 502 voice_livekit_failed and no session row", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    s.livekit.inject({ method: "CreateRoom", status: 500 })
    const reply = await startSession(s, apiKey, piExample(agentId))
    expect(reply.status).toBe(502)
    expect(error(reply)).toMatchObject({ type: "api_error", code: "voice_livekit_failed" })
    expect(JSON.stringify(reply.body)).not.toContain(s.livekit.apiSecret)
    expect(await sessionCount(s, orgId)).toBe(0)
    expect(roomsOf(s, orgId)).toHaveLength(0)
    // The room a failed CreateRoom may have created is deleted in the background: let that finish.
    await eventually(() => s.livekit.requests.some((r) => r.method === "DeleteRoom" && r.status !== 0))
  })

  test("LiveKit CreateRoom slower than UPSTREAM_TIMEOUT_MS → 502 voice_livekit_failed after the timeout", async () => {
    const { apiKey, orgId } = await slow.newTenant()
    const agentId = await createAgent(slow, apiKey)
    const hold = makeHold()
    slow.livekit.inject({ method: "CreateRoom", hold, times: 1 })
    const reply = await startSession(slow, apiKey, piExample(agentId))
    expect(reply.status).toBe(502)
    expect(error(reply)).toMatchObject({ code: "voice_livekit_failed" })
    expect(error(reply).message as string).toContain("timed out")
    // Answered while CreateRoom still had no answer: the timeout ended the call.
    expect(slow.livekit.requests.map((r) => [r.method, r.status])).toEqual([["CreateRoom", 0]])
    expect(await sessionCount(slow, orgId)).toBe(0)
    // The abandoned request still creates the room (late); it is deleted once that is known.
    hold.release()
    await eventually(() => slow.livekit.requests.some((r) => r.method === "DeleteRoom" && r.status !== 0))
    expect(slow.livekit.requests.map((r) => [r.method, r.status])).toEqual([
      ["CreateRoom", 200],
      ["DeleteRoom", 200],
    ])
    expect(roomsOf(slow, orgId)).toHaveLength(0)
    expect(await sessionCount(slow, orgId)).toBe(0)
  })

  test("Gemini auth_tokens failing → 502 voice_gemini_ephemeral_failed, no row, the room is deleted again", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    s.gemini.inject({ method: "auth_tokens", status: 500 })
    const reply = await startSession(s, apiKey, piExample(agentId))
    expect(reply.status).toBe(502)
    expect(error(reply)).toMatchObject({ type: "api_error", code: "voice_gemini_ephemeral_failed" })
    expect(JSON.stringify(reply.body)).not.toContain(s.gemini.apiKey)
    expect(await sessionCount(s, orgId)).toBe(0)
    expect(s.livekit.requests.map((r) => [r.method, r.status])).toEqual([
      ["CreateRoom", 200],
      ["DeleteRoom", 200],
    ])
    expect(roomsOf(s, orgId)).toHaveLength(0)
  })

  test("Gemini auth_tokens slower than UPSTREAM_TIMEOUT_MS → 502, the room is deleted again", async () => {
    const { apiKey, orgId } = await slow.newTenant()
    const agentId = await createAgent(slow, apiKey)
    const hold = makeHold()
    slow.gemini.inject({ method: "auth_tokens", hold, times: 1 })
    const reply = await startSession(slow, apiKey, piExample(agentId))
    expect(reply.status).toBe(502)
    expect(error(reply)).toMatchObject({ code: "voice_gemini_ephemeral_failed" })
    expect(error(reply).message as string).toContain("timed out")
    // Answered while auth_tokens still had no answer: the timeout ended the call.
    expect(tokenRequests(slow).map((r) => r.status)).toEqual([0])
    expect(await sessionCount(slow, orgId)).toBe(0)
    expect(roomsOf(slow, orgId)).toHaveLength(0)
    hold.release()
  })

  test("both upstreams are called concurrently: each is in flight before either answers", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    const room = makeHold()
    const token = makeHold()
    s.livekit.inject({ method: "CreateRoom", hold: room, times: 1 })
    s.gemini.inject({ method: "auth_tokens", hold: token, times: 1 })
    const pending = startSession(s, apiKey, piExample(agentId))
    // Called one after the other, the second would never arrive while the first is held.
    await Promise.all([room.arrived, token.arrived])
    expect(await sessionCount(s, orgId)).toBe(0)
    room.release()
    token.release()
    const reply = await pending
    expect(reply.status).toBe(201)
    expect(await sessionCount(s, orgId)).toBe(1)
  })
  test("a client that disconnects mid-start leaves a consistent state: row and room, never one alone", async () => {
    const { apiKey, orgId } = await s.newTenant()
    const agentId = await createAgent(s, apiKey)
    const room = makeHold()
    const token = makeHold()
    s.livekit.inject({ method: "CreateRoom", hold: room, times: 1 })
    s.gemini.inject({ method: "auth_tokens", hold: token, times: 1 })
    const controller = new AbortController()
    const disconnects = s.disconnects()
    const pending = s.fetchRaw("/api/v1/voice/sessions", {
      method: "POST",
      apiKey,
      body: JSON.stringify(piExample(agentId)),
      signal: controller.signal,
    })
    // Mid-start: both upstream calls are in flight when the client goes away.
    await Promise.all([room.arrived, token.arrived])
    controller.abort()
    await pending.catch(() => undefined)
    await eventually(() => s.disconnects() > disconnects)
    room.release()
    token.release()
    // The start runs to its end (it is uninterruptible), so the session exists with its room.
    await eventually(async () => (await sessionCount(s, orgId)) === 1)
    const rooms = roomsOf(s, orgId)
    expect(rooms).toHaveLength(1)
    expect(rooms[0].name).toStartWith("voice_")
    expect((await sessionRow(s, rooms[0].name.slice("voice_".length)))?.status).toBe("active")
  })
})

describe("get", () => {
  test("an active session: every field of SPEC §6, transcript and results null", async () => {
    const { apiKey, sessionId, agentId, started } = await activeSession(
      s,
      {},
      { context: { tier: "gold" }, max_duration_seconds: 300 },
    )
    const reply = await getSession(s, apiKey, sessionId)
    expect(reply.status).toBe(200)
    expect(reply.body).toMatchObject({ object: "voice_session", status: "active" })
    const d = data(reply)
    expect(Object.keys(d).sort()).toEqual(SESSION_FIELDS)
    expect(d).toMatchObject({
      session_id: sessionId,
      agent_id: agentId,
      status: "active",
      participant: { identity: "user_abc123", name: "Alice" },
      context: { tier: "gold" },
      transcript: null,
      results: null,
      extraction_warnings: [],
      duration_seconds: null,
      max_duration_seconds: 300,
      error_log: [],
      metadata: {},
      expires_at: data(started).expires_at as number,
      completed_at: null,
    })
    expect(d.updated_at).toBe(d.created_at as number)
    // wait_for_completion=false answers at once.
    // (A wait of 120 s would outlast the test's timeout.)
    const noWait = await getSession(s, apiKey, sessionId, "?wait_for_completion=false&timeout_seconds=120")
    expect(noWait.status).toBe(200)
    expect(data(noWait)).toEqual(d)
  })

  test("unknown and other organization's sessions are 404; a non-UUID id is 400 param id", async () => {
    const { sessionId } = await activeSession(s)
    const { apiKey } = await s.newTenant()
    for (const id of [UNKNOWN_ID, sessionId]) {
      // Nothing to wait on: a 404 at once (a wait of 120 s would outlast the test's timeout).
      for (const query of ["", "?wait_for_completion=true&timeout_seconds=120"]) {
        const reply = await getSession(s, apiKey, id, query)
        expect(reply.status).toBe(404)
        expect(error(reply)).toMatchObject({ type: "not_found_error", code: "voice_session_not_found" })
      }
    }
    const client = await s.client(apiKey)
    const typed = await failure(client.sessions.get({ path: { id: sessionId as SessionId }, urlParams: {} }))
    expect(typed).toBeInstanceOf(VoiceSessionNotFound)
    const bad = await getSession(s, apiKey, "not-a-uuid")
    expect(bad.status).toBe(400)
    expect(error(bad)).toMatchObject({ code: "invalid_request", param: "id" })
  })
})

describe("complete", () => {
  test("the Pi example: no schema → transcript summary, no model call; data is what GET returns", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const before = nowSeconds()
    const reply = await completeSession(s, apiKey, sessionId, {
      transcript: TRANSCRIPT,
      duration_seconds: 120,
    })
    expect(reply.status).toBe(200)
    const summary =
      "agent: Hi! How can I help you today? | user: I am looking for a Pro plan upgrade. | agent: Great, what is your team size?"
    expect(Object.keys(reply.body).sort()).toEqual([
      "created_at",
      "data",
      "id",
      "object",
      "results",
      "status",
    ])
    expect(reply.body).toMatchObject({
      object: "voice_session",
      status: "completed",
      results: { transcript_summary: summary },
    })
    const d = data(reply)
    expect(d).toMatchObject({
      status: "completed",
      transcript: TRANSCRIPT,
      results: { transcript_summary: summary },
      extraction_warnings: [],
      duration_seconds: 120,
      error_log: [],
    })
    expect(d.completed_at as number).toBeWithin(before, nowSeconds() + 1)
    expect(extractionRequests(s)).toHaveLength(0)
    expect(data(await getSession(s, apiKey, sessionId))).toEqual(d)
    const row = await sessionRow(s, sessionId)
    expect(row).toMatchObject({
      status: "completed",
      transcript: TRANSCRIPT,
      duration_seconds: 120,
      results: { transcript_summary: summary },
    })
    expect(row?.completed_at).toBeInstanceOf(Date)
  })

  test("the typed client decodes the complete and long-poll responses", async () => {
    const { apiKey, sessionId } = await activeSession(s, { output_schema: { team_size: "number" } })
    const client = await s.client(apiKey)
    const id = sessionId as SessionId
    const waiting = Effect.runPromise(
      client.sessions.get({ path: { id }, urlParams: { wait_for_completion: true, timeout_seconds: 5 } }),
    )
    const completed = await Effect.runPromise(
      client.sessions.complete({
        path: { id },
        payload: { transcript: [{ role: "user", text: "a team of 3" }], duration_seconds: 9 },
      }),
    )
    expect(completed.status).toBe("completed")
    expect(completed.results).toEqual({ team_size: 3 })
    expect(completed.extraction_warnings).toBeUndefined()
    const got = await waiting
    expect(got.status).toBe("completed")
    expect(got.data).toEqual(completed.data)
    const again = await failure(
      client.sessions.complete({ path: { id }, payload: { transcript: [{ role: "user", text: "x" }] } }),
    )
    expect(again).toBeInstanceOf(VoiceSessionNotActive)
  })

  test("hints: results have exactly the output_schema keys, unanswered ones null; questions in the prompt", async () => {
    const { apiKey, sessionId } = await activeSession(s, {
      purpose: "Qualify inbound leads",
      questions: [
        { key: "team_size", ask: "How many people are on your team?", type: "number" },
        { key: "plan", ask: "Which plan do you want?", type: "enum", options: ["pro", "basic"] },
      ],
      output_schema: {
        team_size: "number",
        plan: "enum:pro,basic",
        start_date: "date",
        wants_demo: "boolean",
        company: "text",
      },
    })
    const reply = await completeSession(s, apiKey, sessionId, {
      transcript: [
        { role: "agent", text: "How many people are on your team?" },
        { role: "user", text: "Our team is 12 people and we want the pro plan." },
      ],
      duration_seconds: 45,
    })
    expect(reply.status).toBe(200)
    const results = { team_size: 12, plan: "pro", start_date: null, wants_demo: null, company: null }
    expect(reply.body.results).toEqual(results)
    expect(reply.body.extraction_warnings).toBeUndefined()
    expect(data(reply)).toMatchObject({ status: "completed", results, extraction_warnings: [] })

    const requests = extractionRequests(s)
    expect(requests).toHaveLength(1)
    expect(requests[0].model).toBe(DEFAULT_EXTRACTION_MODEL)
    const prompt = promptOf(requests[0].body)
    expect(prompt).toContain("How many people are on your team?")
    expect(prompt).toContain("Which plan do you want?")
    expect(prompt).toContain("user: Our team is 12 people and we want the pro plan.")
    const config = (requests[0].body as { generationConfig: Json }).generationConfig
    expect(config.responseMimeType).toBe("application/json")
    const schema = config.responseSchema as { properties: Record<string, Json>; required: Array<string> }
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(results).sort())
    expect(schema.required.sort()).toEqual(Object.keys(results).sort())
    for (const property of Object.values(schema.properties)) expect(property.nullable).toBe(true)
    expect(schema.properties.plan.enum).toEqual(["pro", "basic"])
    expect((await sessionRow(s, sessionId))?.results).toEqual(results)
  })

  const strictAgent = {
    extraction_model: "gemini-3.5-flash",
    output_schema: { ignored: "text" },
    output_schema_strict: {
      type: "object",
      properties: { rating: { type: "number", minimum: 1, maximum: 5 }, summary: { type: "string" } },
      required: ["rating", "summary"],
    },
  }
  const ratingTranscript = {
    transcript: [
      { role: "agent", text: "How would you rate the service?" },
      { role: "user", text: "I would rate it 4 out of 5." },
    ],
    duration_seconds: 30,
  }

  test("strict schema: constrained to it (not the hints), agent model, results conform", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(200)
    expect(reply.body.status).toBe("completed")
    const results = reply.body.results as Json
    expect(Object.keys(results).sort()).toEqual(["rating", "summary"])
    expect(results.rating).toBe(4)
    expect(typeof results.summary).toBe("string")
    expect(reply.body.extraction_warnings).toBeUndefined()
    const [request] = extractionRequests(s)
    expect(request.model).toBe("gemini-3.5-flash")
    const schema = (request.body as { generationConfig: { responseSchema: Json } }).generationConfig
      .responseSchema
    expect(Object.keys(schema.properties as Json).sort()).toEqual(["rating", "summary"])
  })

  test("strict schema: a violating reply completes with extraction_warnings, mirrored into metadata", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    s.gemini.inject({ method: "generateContent", text: JSON.stringify({ rating: "high" }), times: 1 })
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(200)
    expect(reply.body.status).toBe("completed")
    expect(reply.body.results).toEqual({ rating: "high" })
    const warnings = reply.body.extraction_warnings as Array<string>
    expect(warnings.length).toBeGreaterThanOrEqual(2) // wrong type, missing summary
    expect(warnings.some((w) => w.includes("rating"))).toBe(true)
    expect(warnings.some((w) => w.includes("summary"))).toBe(true)
    expect(data(reply)).toMatchObject({
      extraction_warnings: warnings,
      metadata: { pi_extraction_warnings: warnings },
    })
    const row = await sessionRow(s, sessionId)
    expect(row).toMatchObject({
      status: "completed",
      extraction_warnings: warnings,
      metadata: { pi_extraction_warnings: warnings },
    })
  })

  test("output that is not JSON twice → results {} with a warning, still completed", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    s.gemini.inject({ method: "generateContent", text: "Sure! The rating is 4.", times: 2 })
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(200)
    expect(reply.body.status).toBe("completed")
    expect(reply.body.results).toEqual({})
    const warnings = reply.body.extraction_warnings as Array<string>
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain("not valid JSON")
    expect(extractionRequests(s)).toHaveLength(2)
    expect(await sessionRow(s, sessionId)).toMatchObject({
      status: "completed",
      results: {},
      metadata: { pi_extraction_warnings: warnings },
    })
  })

  test.each([
    [
      { blockReason: "PROHIBITED_CONTENT" },
      "Gemini blocked the extraction prompt (blockReason PROHIBITED_CONTENT)",
    ],
    [{ finishReason: "SAFETY" }, "Gemini stopped the extraction output (finishReason SAFETY)"],
    [{ finishReason: "RECITATION" }, "Gemini stopped the extraction output (finishReason RECITATION)"],
    [{ finishReason: "MAX_TOKENS" }, "cut off at the model's output token limit (finishReason MAX_TOKENS)"],
  ])(
    "blocked or truncated output (%o) is reported as such, once, not asked again",
    async (fault, warning) => {
      const { apiKey, sessionId } = await activeSession(s, strictAgent)
      s.gemini.inject({ method: "generateContent", ...fault, times: 1 })
      const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
      expect(reply.status).toBe(200)
      expect(reply.body.status).toBe("completed")
      expect(reply.body.results).toEqual({})
      const warnings = reply.body.extraction_warnings as Array<string>
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain(warning)
      expect(warnings[0]).not.toContain("not valid JSON")
      expect(extractionRequests(s)).toHaveLength(1)
      expect(await sessionRow(s, sessionId)).toMatchObject({
        status: "completed",
        results: {},
        error_log: [],
        metadata: { pi_extraction_warnings: warnings },
      })
    },
  )

  test("output that is not JSON once, then valid → the valid results", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    s.gemini.inject({ method: "generateContent", text: "not json", times: 1 })
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(200)
    expect((reply.body.results as Json).rating).toBe(4)
    expect(reply.body.extraction_warnings).toBeUndefined()
    expect(extractionRequests(s)).toHaveLength(2)
  })

  test("a transient 503 is retried", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    s.gemini.inject({ method: "generateContent", status: 503, times: 1 })
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(200)
    expect((reply.body.results as Json).rating).toBe(4)
    expect(extractionRequests(s).map((r) => r.status)).toEqual([503, 200])
  })

  test("a hung extraction call is cut at UPSTREAM_TIMEOUT_MS and retried, though completion is uninterruptible", async () => {
    const { apiKey, sessionId } = await activeSession(slow, strictAgent)
    const hold = makeHold()
    slow.gemini.inject({ method: "generateContent", hold, times: 1 })
    const reply = await completeSession(slow, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(200)
    expect((reply.body.results as Json).rating).toBe(4)
    expect(extractionRequests(slow).map((r) => r.status)).toEqual([0, 200]) // the first never answered
    hold.release()
  })

  test("a client that disconnects mid-complete: the completion still finishes and wakes waiters", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    const hold = makeHold()
    s.gemini.inject({ method: "generateContent", hold, times: 1 })
    const controller = new AbortController()
    const disconnects = s.disconnects()
    const pending = s.fetchRaw(`/api/v1/voice/sessions/${sessionId}/complete`, {
      method: "POST",
      apiKey,
      body: JSON.stringify(ratingTranscript),
      signal: controller.signal,
    })
    // Mid-complete: the extraction call is in flight when the client goes away.
    await hold.arrived
    controller.abort()
    await pending.catch(() => undefined)
    await eventually(() => s.disconnects() > disconnects)
    // A waiter registered before the extraction answers, with a wait that outlasts the test's
    // timeout: only the completion's wake-up can answer it.
    const waiting = getSession(s, apiKey, sessionId, "?wait_for_completion=true&timeout_seconds=120")
    await eventually(async () => (await waiters(s, sessionId)) === 1)
    hold.release()
    const reply = await waiting
    expect(reply.body.status).toBe("completed")
    expect((data(reply).results as Json).rating).toBe(4)
    expect((await sessionRow(s, sessionId))?.status).toBe("completed")
  })

  test("Gemini failing → 502 voice_result_extraction_failed; session failed, error logged, transcript kept", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    // A non-retryable status fails at once (5xx would be retried for up to 30 s).
    s.gemini.inject({ method: "generateContent", status: 400 })
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(502)
    expect(error(reply)).toMatchObject({ type: "api_error", code: "voice_result_extraction_failed" })
    expect(error(reply).message as string).toContain("transcript is kept")
    // the client gets a plain message (and the request id); the upstream's words are in error_log
    expect(error(reply).message as string).not.toContain("Injected fault")
    expect(error(reply).request_id).toBe(reply.headers.get("x-request-id"))
    expect(JSON.stringify(reply.body)).not.toContain(s.gemini.apiKey)

    const row = await sessionRow(s, sessionId)
    expect(row).toMatchObject({
      status: "failed",
      transcript: ratingTranscript.transcript,
      duration_seconds: 30,
      results: null,
    })
    expect(row?.completed_at).toBeInstanceOf(Date)
    expect(row?.error_log).toHaveLength(1)
    expect(row?.error_log[0]).toMatchObject({ code: "voice_result_extraction_failed" })
    expect(row?.error_log[0].message).toContain("Injected fault")
    expect(row?.error_log[0].at as number).toBeWithin(nowSeconds() - 5, nowSeconds() + 1)
    expect(JSON.stringify(row?.error_log)).not.toContain(s.gemini.apiKey)

    const got = await getSession(s, apiKey, sessionId)
    expect(got.body.status).toBe("failed")
    expect(data(got)).toMatchObject({ status: "failed", error_log: row?.error_log })

    // A retry with the same transcript gets the same outcome, and the model is not asked again.
    const again = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(again.status).toBe(502)
    expect(error(again).code).toBe("voice_result_extraction_failed")
    expect(extractionRequests(s)).toHaveLength(1)
    const other = await completeSession(s, apiKey, sessionId, { transcript: [{ role: "user", text: "hi" }] })
    expect(other.status).toBe(409)
    expect(error(other).code).toBe("voice_session_not_active")
  })

  test("an extraction model the API does not serve → failed after one call (404 is not retried)", async () => {
    const { apiKey, sessionId } = await activeSession(s, {
      ...strictAgent,
      extraction_model: "gemini-2.5-flash",
    })
    const reply = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(reply.status).toBe(502)
    expect(extractionRequests(s).map((r) => [r.version, r.model, r.status])).toEqual([
      ["v1beta", "gemini-2.5-flash", 404],
    ])
    const row = await sessionRow(s, sessionId)
    expect(row?.status).toBe("failed")
    expect(row?.error_log[0].message).toContain("models/gemini-2.5-flash is not found")
  })

  test("a retried complete with the same transcript answers with the outcome, without a second model call", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    const first = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(first.status).toBe(200)
    const before = await sessionRow(s, sessionId)
    const retried = await completeSession(s, apiKey, sessionId, ratingTranscript)
    expect(retried.status).toBe(200)
    expect(retried.body.results).toEqual(first.body.results)
    expect(data(retried)).toEqual(data(first))
    expect(extractionRequests(s)).toHaveLength(1)
    expect(await sessionRow(s, sessionId)).toEqual(before)
  })

  test("a retry while the first complete is still extracting waits for its outcome", async () => {
    const { apiKey, sessionId } = await activeSession(s, strictAgent)
    const hold = makeHold()
    s.gemini.inject({ method: "generateContent", hold, times: 1 })
    const first = completeSession(s, apiKey, sessionId, ratingTranscript)
    await hold.arrived
    expect((await sessionRow(s, sessionId))?.status).toBe("completing")
    const retried = completeSession(s, apiKey, sessionId, ratingTranscript)
    // the retry is waiting on the session like a long-poll before the model answers
    await eventually(async () => (await waiters(s, sessionId)) === 1)
    hold.release()
    const [a, b] = await Promise.all([first, retried])
    expect([a.status, b.status]).toEqual([200, 200])
    expect(b.body.results).toEqual(a.body.results)
    expect(extractionRequests(s)).toHaveLength(1)
  })

  test("completing twice → 409 voice_session_not_active and nothing changes", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    expect((await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })).status).toBe(200)
    const before = await sessionRow(s, sessionId)
    const again = await completeSession(s, apiKey, sessionId, {
      transcript: [{ role: "user", text: "something else" }],
      duration_seconds: 5,
    })
    expect(again.status).toBe(409)
    expect(error(again)).toMatchObject({ type: "conflict_error", code: "voice_session_not_active" })
    expect(error(again).message as string).toContain("completed")
    expect(await sessionRow(s, sessionId)).toEqual(before)
  })

  test("complete on unknown or another organization's session → 404, nothing changes", async () => {
    const { sessionId } = await activeSession(s)
    const { apiKey } = await s.newTenant()
    for (const id of [UNKNOWN_ID, sessionId]) {
      const reply = await completeSession(s, apiKey, id, { transcript: TRANSCRIPT })
      expect(reply.status).toBe(404)
      expect(error(reply).code).toBe("voice_session_not_found")
    }
    expect(await sessionRow(s, sessionId)).toMatchObject({ status: "active", transcript: null })
    const bad = await completeSession(s, apiKey, "nope", { transcript: TRANSCRIPT })
    expect(bad.status).toBe(400)
    expect(error(bad)).toMatchObject({ code: "invalid_request", param: "id" })
  })

  test("a session of a since-deleted agent can still be completed", async () => {
    const { apiKey, agentId, sessionId } = await activeSession(s, { output_schema: { team_size: "number" } })
    expect((await call(s, apiKey, "DELETE", `/api/v1/voice/agents/${agentId}`)).status).toBe(200)
    const reply = await completeSession(s, apiKey, sessionId, {
      transcript: [{ role: "user", text: "team of 7" }],
    })
    expect(reply.status).toBe(200)
    expect(reply.body.results).toEqual({ team_size: 7 })
  })

  test("10 simultaneous completes: exactly one 200, nine 409, one model call", async () => {
    const { apiKey, sessionId } = await activeSession(s, { output_schema: { team_size: "number" } })
    const hold = makeHold()
    s.gemini.inject({ method: "generateContent", hold })
    const answered: Array<number> = []
    const pending = Array.from({ length: 10 }, (_, i) =>
      completeSession(s, apiKey, sessionId, {
        transcript: [{ role: "user", text: `team of ${i + 1}` }],
        duration_seconds: i,
      }).then((reply) => {
        answered.push(reply.status)
        return reply
      }),
    )
    // Nine are refused while the winner's extraction is still in flight: the claim decides, not the outcome.
    await hold.arrived
    await eventually(() => answered.length === 9)
    expect(answered).toEqual(Array(9).fill(409))
    hold.release()
    const replies = await Promise.all(pending)
    const statuses = replies.map((r) => r.status).sort()
    expect(statuses).toEqual([200, 409, 409, 409, 409, 409, 409, 409, 409, 409])
    const winner = replies.find((r) => r.status === 200)
    for (const loser of replies.filter((r) => r.status === 409))
      expect(error(loser).code).toBe("voice_session_not_active")
    expect(extractionRequests(s)).toHaveLength(1)
    const row = await sessionRow(s, sessionId)
    expect(row?.status).toBe("completed")
    // The stored transcript and results are the winner's.
    expect<unknown>(row?.transcript).toEqual(data(winner as NonNullable<typeof winner>).transcript)
    expect(row?.results).toEqual({ team_size: (row?.duration_seconds ?? 0) + 1 })
  })
})
