/** Sessions service with swapped upstream layers (no HTTP): start, complete, long-poll, sweeper. */
import { describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Chunk, Clock, Effect, Either, Fiber, Layer, ManagedRuntime, TestClock, TestContext } from "effect"
import { Agents } from "../src/Agents.ts"
import { ApiKeys } from "../src/Auth/ApiKeys.ts"
import { AppConfig } from "../src/Config.ts"
import type { CreateAgent } from "../src/Domain/Agent.ts"
import type { AgentId, OrgId, SessionId } from "../src/Domain/Ids.ts"
import { Gemini, GeminiEphemeralError, GeminiExtractionError, type JsonRequest } from "../src/Gemini.ts"
import { LiveKit, LiveKitError } from "../src/LiveKit.ts"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"
import { sweepOnce } from "../src/Sessions/Sweeper.ts"
import { Sessions } from "../src/Sessions.ts"
import { TestSqlLayer } from "./support/db.ts"
import { captureLogs } from "./support/logs.ts"
import { until } from "./support/wait.ts"

interface Fakes {
  roomDelayMs?: number
  tokenDelayMs?: number
  roomFails?: boolean
  tokenFails?: boolean
  /** Replies of generateJson, in order; an Error means an upstream failure. */
  replies?: Array<string | Error>
}

/** The upstream fakes sleep on the clock: under a TestClock a test decides when they answer. */
const setup = (fakes: Fakes = {}) => {
  const logs = captureLogs()
  const calls = { created: [] as string[], deleted: [] as string[], minted: 0, json: [] as JsonRequest[] }
  const replies = [...(fakes.replies ?? [])]
  const livekit = Layer.succeed(LiveKit, {
    clientUrl: "wss://livekit.test",
    createRoom: (spec) =>
      Effect.sleep(fakes.roomDelayMs ?? 0).pipe(
        Effect.zipRight(
          fakes.roomFails
            ? Effect.fail(new LiveKitError({ message: "room service down" }))
            : Effect.sync(() => void calls.created.push(spec.name)),
        ),
      ),
    deleteRoom: (name) => Effect.sync(() => void calls.deleted.push(name)),
    participantToken: (grant) => Effect.succeed(`jwt-for-${grant.identity}`),
    verifyWebhook: () => Effect.die("unused"),
  })
  const gemini = Layer.succeed(Gemini, {
    mintLiveToken: () =>
      Effect.sleep(fakes.tokenDelayMs ?? 0).pipe(
        Effect.zipRight(
          fakes.tokenFails
            ? Effect.fail(new GeminiEphemeralError({ message: "quota" }))
            : Effect.sync(() => {
                calls.minted += 1
                return { url: "wss://gemini.test/live", token: "auth_tokens/test" }
              }),
        ),
      ),
    generateJson: (request) =>
      Effect.suspend(() => {
        calls.json.push(request)
        const reply = replies.shift() ?? "{}"
        return reply instanceof Error
          ? Effect.fail(new GeminiExtractionError({ message: reply.message, retryable: false }))
          : Effect.succeed(reply)
      }),
  })
  const layer = Layer.mergeAll(Sessions.Live, SessionsRepo.Live).pipe(
    Layer.provideMerge(Layer.mergeAll(Agents.Live, ApiKeys.Live, CompletionHub.Local)),
    Layer.provideMerge(Layer.mergeAll(livekit, gemini)),
    Layer.provideMerge(TestSqlLayer),
    Layer.provideMerge(AppConfig.layer({ sessionCompletionGraceSeconds: 0 })),
    Layer.provide(logs.layer),
  )
  return { calls, logs: logs.lines, runtime: ManagedRuntime.make(layer) }
}

/** Succeeds once fibers are asleep on the TestClock until each of these instants. */
const asleepUntil = (...instants: ReadonlyArray<number>) =>
  until(Effect.map(TestClock.sleeps(), (sleeps) => instants.every((t) => Chunk.contains(sleeps, t))))

const agentInput: CreateAgent = {
  name: "Qualifier",
  instructions: "Qualify the lead.",
  questions: [{ key: "budget", ask: "What is your budget?", type: "number" }],
  output_schema: { budget: "number", company: "text" },
}

const tenantWithAgent = (input: CreateAgent = agentInput) =>
  Effect.gen(function* () {
    const org = yield* (yield* ApiKeys).createOrg("unit")
    const orgId = org.org_id as OrgId
    const agent = yield* (yield* Agents).create(orgId, input)
    return { orgId, agentId: agent.agent_id as AgentId }
  })

const sessionCount = (agentId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM sessions WHERE agent_id = ${agentId}`,
      (r) => r[0].n,
    ),
  )

const transcript = [
  { role: "agent" as const, text: "What is your budget?" },
  { role: "user" as const, text: "About 500 a month." },
]

describe("start", () => {
  test("calls both upstreams concurrently and stores the session only after both succeed", async () => {
    const { calls, runtime } = setup({ roomDelayMs: 250, tokenDelayMs: 400 })
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const sessions = yield* Sessions
        return yield* Effect.gen(function* () {
          yield* TestClock.setTime(Date.now()) // the stored row gets today's timestamps
          const now = yield* Clock.currentTimeMillis
          const start = yield* Effect.fork(
            sessions.start(orgId, { agent_id: agentId, participant: { identity: "u1" } }),
          )
          // Both upstream calls are in flight at once: sequential calls never sleep at the same time.
          yield* asleepUntil(now + 250, now + 400)
          const rowsMeanwhile = yield* sessionCount(agentId)
          // The slower upstream's delay completes the start.
          yield* TestClock.adjust("400 millis")
          const session = yield* Fiber.join(start)
          return { session, rowsMeanwhile, rows: yield* sessionCount(agentId) }
        }).pipe(Effect.provide(TestContext.TestContext))
      }),
    )
    expect(result.rowsMeanwhile).toBe(0)
    expect(result.rows).toBe(1)
    expect(calls.created).toEqual([`voice_${result.session.session_id}`])
    expect(result.session.connection).toEqual({
      livekit: { url: "wss://livekit.test", token: "jwt-for-u1" },
      gemini_live: { url: "wss://gemini.test/live", token: "auth_tokens/test" },
    })
    await runtime.dispose()
  })

  test("a failed token mint deletes the room it created and stores nothing", async () => {
    const { calls, runtime } = setup({ tokenFails: true })
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const error = yield* Effect.flip(
          (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } }),
        )
        return { error, rows: yield* sessionCount(agentId) }
      }),
    )
    expect(result.error._tag).toBe("VoiceGeminiEphemeralFailed")
    expect(result.rows).toBe(0)
    expect(calls.created).toHaveLength(1)
    expect(calls.deleted).toEqual(calls.created)
    await runtime.dispose()
  })

  test("a failed room creation is a LiveKit error with nothing stored", async () => {
    const { calls, runtime } = setup({ roomFails: true })
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const error = yield* Effect.flip(
          (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } }),
        )
        return { error, rows: yield* sessionCount(agentId) }
      }),
    )
    expect(result.error._tag).toBe("VoiceLiveKitFailed")
    expect(result.rows).toBe(0)
    expect(calls.deleted).toEqual([])
    await runtime.dispose()
  })

  test("the ttl rule is checked before any lookup or upstream call", async () => {
    const { calls, runtime } = setup()
    const error = await runtime.runPromise(
      Effect.flip(
        Effect.flatMap(Sessions, (s) =>
          s.start(crypto.randomUUID() as OrgId, {
            agent_id: crypto.randomUUID() as AgentId,
            participant: { identity: "u" },
            max_duration_seconds: 900,
          }),
        ),
      ),
    )
    expect(error._tag).toBe("VoiceSessionTtlTooShort")
    expect(error.param).toBe("ttl_seconds")
    expect(calls.created).toEqual([])
    await runtime.dispose()
  })
})

describe("complete", () => {
  const startOne = (input?: CreateAgent) =>
    Effect.gen(function* () {
      const { orgId, agentId } = yield* tenantWithAgent(input)
      const s = yield* (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } })
      return { orgId, sessionId: s.session_id as SessionId }
    })

  test("retries unparseable output once and validates the result", async () => {
    const { calls, runtime } = setup({ replies: ["not json", '{"budget": 500, "company": null}'] })
    const session = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript, duration_seconds: 30 })
      }),
    )
    expect(session.status).toBe("completed")
    expect(session.results).toEqual({ budget: 500, company: null })
    expect(session.extraction_warnings).toEqual([])
    expect(calls.json).toHaveLength(2)
    expect(calls.json[0].prompt).toContain("What is your budget?")
    expect(calls.json[0].prompt).toContain("user: About 500 a month.")
    await runtime.dispose()
  })

  test("schema violations become warnings mirrored into metadata", async () => {
    const { runtime } = setup({ replies: ['{"budget": "lots", "company": null}'] })
    const session = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript })
      }),
    )
    expect(session.status).toBe("completed")
    expect(session.extraction_warnings.length).toBeGreaterThan(0)
    expect(session.extraction_warnings[0]).toContain("/budget")
    expect(session.metadata.pi_extraction_warnings).toEqual(session.extraction_warnings)
    await runtime.dispose()
  })

  test("an upstream failure fails the session but keeps the transcript", async () => {
    const { runtime } = setup({ replies: [new Error("503 from Gemini")] })
    const { error, row } = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const error = yield* Effect.flip((yield* Sessions).complete(orgId, sessionId, { transcript }))
        const row = yield* (yield* SessionsRepo).find(orgId, sessionId)
        return { error, row }
      }),
    )
    expect(error._tag).toBe("VoiceResultExtractionFailed")
    const stored = row._tag === "Some" ? row.value : undefined
    expect(stored?.status).toBe("failed")
    expect(stored?.transcript).toEqual(transcript)
    expect(stored?.error_log[0].code).toBe("voice_result_extraction_failed")
    await runtime.dispose()
  })

  test("an agent without an output schema gets a transcript summary and no model call", async () => {
    const { calls, runtime } = setup()
    const session = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne({ name: "Plain", instructions: "Chat." })
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript })
      }),
    )
    expect(session.results).toEqual({
      transcript_summary: "agent: What is your budget? | user: About 500 a month.",
    })
    expect(calls.json).toHaveLength(0)
    await runtime.dispose()
  })

  test("of concurrent completes exactly one wins", async () => {
    const { calls, runtime } = setup({ replies: ['{"budget": 1, "company": null}'] })
    const outcomes = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const sessions = yield* Sessions
        return yield* Effect.all(
          Array.from({ length: 8 }, () => Effect.either(sessions.complete(orgId, sessionId, { transcript }))),
          { concurrency: "unbounded" },
        )
      }),
    )
    expect(outcomes.filter(Either.isRight)).toHaveLength(1)
    const losers = outcomes.filter(Either.isLeft).map((o) => o.left._tag)
    expect(losers).toEqual(Array(7).fill("VoiceSessionNotActive"))
    expect(calls.json).toHaveLength(1)
    await runtime.dispose()
  })
})

describe("long-poll", () => {
  test("a waiter is woken by the completion, and one without completion times out", async () => {
    const { runtime } = setup({ replies: ['{"budget": 2, "company": null}'] })
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const sessions = yield* Sessions
        const hub = yield* CompletionHub
        const waitingOn = (id: string, n: number) => until(Effect.map(hub.waiting(id), (k) => k === n))
        const a = yield* sessions.start(orgId, { agent_id: agentId, participant: { identity: "a" } })
        const b = yield* sessions.start(orgId, { agent_id: agentId, participant: { identity: "b" } })
        // Under a TestClock that only the test moves, no wait can end by its timeout by itself.
        return yield* Effect.gen(function* () {
          const waiter = yield* Effect.fork(sessions.read(orgId, a.session_id, true, 10))
          yield* waitingOn(a.session_id, 1)
          yield* sessions.complete(orgId, a.session_id, { transcript })
          // The clock has not moved: only the completion can have woken it.
          const woke = yield* Fiber.join(waiter)

          const now = yield* Clock.currentTimeMillis
          const timing = yield* Effect.fork(sessions.read(orgId, b.session_id, true, 1))
          yield* waitingOn(b.session_id, 1)
          yield* asleepUntil(now + 1000)
          yield* TestClock.adjust("999 millis")
          const early = yield* Fiber.poll(timing)
          yield* TestClock.adjust("1 millis")
          const timedOut = yield* Fiber.join(timing)
          return { woke, early, timedOut, left: yield* hub.waiting(b.session_id) }
        }).pipe(Effect.provide(TestContext.TestContext))
      }),
    )
    expect(result.woke.status).toBe("completed")
    expect(result.early._tag).toBe("None")
    expect(result.timedOut.status).toBe("active")
    expect(result.left).toBe(0)
    await runtime.dispose()
  })

  test("the sweeper expires overdue sessions and wakes their waiters", async () => {
    const { runtime } = setup()
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const sessions = yield* Sessions
        const s = yield* sessions.start(orgId, { agent_id: agentId, participant: { identity: "x" } })
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = ${s.session_id}`
        const hub = yield* CompletionHub
        // A TestClock that never moves: only the sweep can end the wait.
        const waiter = yield* Effect.fork(
          sessions.read(orgId, s.session_id, true, 10).pipe(Effect.provide(TestContext.TestContext)),
        )
        yield* until(Effect.map(hub.waiting(s.session_id), (n) => n === 1))
        yield* sweepOnce
        const woke = yield* Fiber.join(waiter)
        const late = yield* Effect.flip(sessions.complete(orgId, s.session_id, { transcript }))
        return { woke, late }
      }),
    )
    expect(result.woke.status).toBe("expired")
    expect(result.late._tag).toBe("VoiceSessionNotActive")
    await runtime.dispose()
  })

  test("a completion whose instance died is retried once its lease runs out", async () => {
    const { logs, runtime } = setup({ replies: ['{"budget": 3, "company": null}'] })
    const row = await runtime.runPromise(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const s = yield* (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "y" } })
        const repo = yield* SessionsRepo
        yield* repo.claim(orgId, s.session_id, transcript, 10, 3600)
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE sessions SET claimed_at = now() - interval '1 hour' WHERE id = ${s.session_id}`
        yield* sweepOnce
        return yield* repo.find(orgId, s.session_id)
      }),
    )
    const stored = row._tag === "Some" ? row.value : undefined
    expect(stored?.status).toBe("completed")
    expect(stored?.results).toEqual({ budget: 3, company: null })
    expect(logs().some((line) => line.includes(`retrying the completion of session ${stored?.id}`))).toBe(
      true,
    )
    await runtime.dispose()
  })

  test("the sweeper forgets webhook event ids past their retention, and keeps recent ones", async () => {
    const { runtime } = setup()
    const left = await runtime.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const old = `evt_old_${crypto.randomUUID()}`
        const recent = `evt_new_${crypto.randomUUID()}`
        yield* sql`INSERT INTO webhook_events (event_id, event, received_at)
          VALUES (${old}, 'room_finished', now() - interval '8 days'), (${recent}, 'room_finished', now())`
        yield* sweepOnce
        const rows = yield* sql<{ event_id: string }>`
          SELECT event_id FROM webhook_events WHERE event_id IN (${old}, ${recent})`
        return rows.map((r) => r.event_id.slice(0, 8))
      }),
    )
    expect(left).toEqual(["evt_new_"])
    await runtime.dispose()
  })
})
