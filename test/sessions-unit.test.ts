/**
 * The Sessions and Webhooks services over the in-memory repositories, with fake upstreams and a
 * TestClock (no database, no HTTP): start, complete, long-poll, expiry, recovery, webhook events.
 */
import { describe, expect, test } from "bun:test"
import { Chunk, Clock, Effect, Either, Fiber, Layer, Option, TestClock, TestContext } from "effect"
import { Agents } from "../src/Agents.ts"
import { AppConfig } from "../src/Config.ts"
import type { CreateAgent } from "../src/Domain/Agent.ts"
import { ServiceUnavailable } from "../src/Domain/Errors.ts"
import { AgentId, OrgId } from "../src/Domain/Ids.ts"
import {
  Gemini,
  GeminiEphemeralError,
  GeminiExtractionError,
  type JsonReply,
  type JsonRequest,
  type LiveTokenSpec,
} from "../src/Gemini.ts"
import { Lifecycle } from "../src/Lifecycle.ts"
import { LiveKit, LiveKitError } from "../src/LiveKit.ts"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"
import { RoomCleanups } from "../src/Sessions/RoomCleanups.ts"
import {
  COMPLETION_LEASE_SECONDS,
  sweepOnce,
  WEBHOOK_EVENT_RETENTION_SECONDS,
} from "../src/Sessions/Sweeper.ts"
import { Sessions } from "../src/Sessions.ts"
import { Transaction } from "../src/Transaction.ts"
import { Webhooks } from "../src/Webhooks.ts"
import { captureLogs } from "./support/logs.ts"
import { until } from "./support/wait.ts"

interface Fakes {
  roomDelayMs?: number
  tokenDelayMs?: number
  roomFails?: boolean
  tokenFails?: boolean
  /** Replies of generateJson, in order; an Error means an upstream failure. */
  replies?: Array<string | JsonReply | Error>
  /** GEMINI_LIVE_MODEL. */
  liveModel?: string
  /** How long each extraction call takes (on the clock). */
  extractDelayMs?: number
  /** The completion hub does not hear other instances (its LISTEN is down). */
  deaf?: boolean
}

/** The upstream fakes sleep on the clock: under the TestClock the test decides when they answer. */
const setup = (fakes: Fakes = {}) => {
  const logs = captureLogs()
  const calls = {
    /** Rooms asked for, when the call starts. */
    requested: [] as string[],
    created: [] as string[],
    deleted: [] as string[],
    json: [] as JsonRequest[],
    tokens: [] as LiveTokenSpec[],
  }
  const replies = [...(fakes.replies ?? [])]
  const livekit = Layer.succeed(LiveKit, {
    clientUrl: "wss://livekit.test",
    createRoom: (spec) =>
      Effect.sync(() => void calls.requested.push(spec.name)).pipe(
        Effect.zipRight(Effect.sleep(fakes.roomDelayMs ?? 0)),
        Effect.zipRight(
          fakes.roomFails
            ? Effect.fail(new LiveKitError({ message: "room service down" }))
            : Effect.sync(() => void calls.created.push(spec.name)),
        ),
      ),
    deleteRoom: (name) => Effect.sync(() => void calls.deleted.push(name)),
    listRooms: Effect.succeed([]),
    participantToken: (grant) => Effect.succeed(`jwt-for-${grant.identity}`),
    verifyWebhook: () => Effect.die("unused"),
  })
  const gemini = Layer.succeed(Gemini, {
    mintLiveToken: (spec) =>
      Effect.sleep(fakes.tokenDelayMs ?? 0).pipe(
        Effect.tap(() => void calls.tokens.push(spec)),
        Effect.zipRight(
          fakes.tokenFails
            ? Effect.fail(new GeminiEphemeralError({ message: "quota" }))
            : Effect.succeed({ url: "wss://gemini.test/live", token: "auth_tokens/test" }),
        ),
      ),
    generateJson: (request) =>
      Effect.suspend(() => {
        if (fakes.extractDelayMs) return Effect.zipRight(Effect.sleep(fakes.extractDelayMs), answer(request))
        return answer(request)
      }),
  })
  function answer(request: JsonRequest) {
    return Effect.suspend(() => {
      calls.json.push(request)
      const reply = replies.shift() ?? "{}"
      return reply instanceof Error
        ? Effect.fail(new GeminiExtractionError({ message: reply.message, retryable: false }))
        : Effect.succeed(typeof reply === "string" ? { text: reply, finishReason: "STOP" } : reply)
    })
  }
  /** Session reads (`find`) the services make, counted; the next `failing` of them fail as in an outage. */
  const reads = { count: 0, failing: 0 }
  const countingRepo = Layer.effect(
    SessionsRepo,
    Effect.map(SessionsRepo, (repo) => ({
      ...repo,
      find: (key: Parameters<typeof repo.find>[0]) =>
        Effect.suspend(() => {
          reads.count++
          if (reads.failing === 0) return repo.find(key)
          reads.failing--
          return Effect.fail(new ServiceUnavailable({ message: "The database is unavailable; retry later." }))
        }),
    })),
  ).pipe(Layer.provide(SessionsRepo.Test))
  const layer = Layer.mergeAll(
    Sessions.layer.pipe(Layer.provide([countingRepo, RoomCleanups.Test, Transaction.Test])),
    Webhooks.Test,
    SessionsRepo.Test,
  ).pipe(
    Layer.provideMerge(Lifecycle.Live),
    Layer.provideMerge(
      Layer.mergeAll(
        Agents.Test,
        fakes.deaf
          ? Layer.effect(
              CompletionHub,
              Effect.map(CompletionHub, (hub) => ({ ...hub, listening: Effect.succeed(false) })),
            ).pipe(Layer.provide(CompletionHub.Local))
          : CompletionHub.Local,
      ),
    ),
    Layer.provideMerge(Layer.mergeAll(livekit, gemini)),
    Layer.provideMerge(
      AppConfig.layer({
        sessionCompletionGraceSeconds: 0,
        ...(fakes.liveModel ? { geminiLiveModel: fakes.liveModel } : {}),
      }),
    ),
    Layer.provide(logs.layer),
  )
  /** Runs a test with its own services, on the TestClock (it starts at 0 and moves only when told). */
  const run = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof layer>>) =>
    Effect.runPromise(effect.pipe(Effect.provide(layer), Effect.provide(TestContext.TestContext)))
  return { calls, logs: logs.lines, reads, run }
}

/** Succeeds once fibers are asleep on the TestClock until each of these instants. */
const asleepUntil = (...instants: ReadonlyArray<number>) =>
  until(Effect.map(TestClock.sleeps(), (sleeps) => instants.every((t) => Chunk.contains(sleeps, t))))

const waitingOn = (id: string, n: number) =>
  Effect.flatMap(CompletionHub, (hub) => until(Effect.map(hub.waiting(id), (k) => k === n)))

const agentInput: CreateAgent = {
  name: "Qualifier",
  instructions: "Qualify the lead.",
  questions: [{ key: "budget", ask: "What is your budget?", type: "number" }],
  output_schema: { budget: "number", company: "text" },
}

const tenantWithAgent = (input: CreateAgent = agentInput) =>
  Effect.gen(function* () {
    const orgId = OrgId.make(crypto.randomUUID())
    const agent = yield* (yield* Agents).create(orgId, input)
    return { orgId, agentId: agent.agent_id }
  })

const startOne = (input?: CreateAgent) =>
  Effect.gen(function* () {
    const { orgId, agentId } = yield* tenantWithAgent(input)
    const s = yield* (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } })
    return { orgId, sessionId: s.session_id }
  })

/** Two active sessions of one organization, with the services that wait on them. */
const twoSessions = Effect.gen(function* () {
  const { orgId, agentId } = yield* tenantWithAgent()
  const sessions = yield* Sessions
  const hub = yield* CompletionHub
  const a = yield* sessions.start(orgId, { agent_id: agentId, participant: { identity: "a" } })
  const b = yield* sessions.start(orgId, { agent_id: agentId, participant: { identity: "b" } })
  return { orgId, sessions, hub, a, b }
})

/** The stored session behind a room name, if any. */
const stored = (orgId: OrgId, room: string | undefined) =>
  Effect.flatMap(SessionsRepo, (repo) => repo.find({ orgId, id: (room ?? "").slice("voice_".length) }))

const transcript = [
  { role: "agent" as const, text: "What is your budget?" },
  { role: "user" as const, text: "About 500 a month." },
]

describe("start", () => {
  test("calls both upstreams concurrently and stores the session only after both succeed", async () => {
    const { calls, run } = setup({ roomDelayMs: 250, tokenDelayMs: 400 })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const now = yield* Clock.currentTimeMillis
        const start = yield* Effect.fork(
          (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u1" } }),
        )
        // Both upstream calls are in flight at once: sequential calls never sleep at the same time.
        yield* asleepUntil(now + 250, now + 400)
        const meanwhile = yield* stored(orgId, calls.requested[0])
        // The slower upstream's delay completes the start.
        yield* TestClock.adjust("400 millis")
        const session = yield* Fiber.join(start)
        return { session, meanwhile, after: yield* stored(orgId, calls.requested[0]) }
      }),
    )
    expect(result.meanwhile).toEqual(Option.none())
    expect(Option.map(result.after, (s) => s.status)).toEqual(Option.some("active"))
    expect(calls.created).toEqual([`voice_${result.session.session_id}`])
    expect(result.session.connection).toEqual({
      livekit: { url: "wss://livekit.test", token: "jwt-for-u1" },
      gemini_live: { url: "wss://gemini.test/live", token: "auth_tokens/test" },
    })
    // expires_at = created_at + the default ttl of 600 s
    expect(result.session.expires_at).toBe(600)
  })

  test("the voice language: a speech-config tag for half-cascade models, an instruction rule for native audio", async () => {
    const start = (liveModel: string) => {
      const { calls, run } = setup({ liveModel })
      return run(
        Effect.gen(function* () {
          const { orgId, agentId } = yield* tenantWithAgent({
            ...agentInput,
            language: "English",
            voice: { language_code: "pt-br" },
          })
          const session = yield* (yield* Sessions).start(orgId, {
            agent_id: agentId,
            participant: { identity: "u" },
          })
          return { session, token: calls.tokens[0] }
        }),
      )
    }
    const halfCascade = await start("gemini-live-2.5-flash-preview")
    expect(halfCascade.token.languageCode).toBe("pt-BR")
    expect(halfCascade.session.system_instruction).not.toContain("Speak pt-BR")
    const native = await start("gemini-3.8-live")
    expect(native.token.languageCode).toBeUndefined()
    expect(native.session.system_instruction).toContain(
      "## Voice language\nSpeak pt-BR (BCP 47 language tag)",
    )
  })

  test("a free-text language is never sent as a language code", async () => {
    const { calls, run } = setup({ liveModel: "gemini-live-2.5-flash-preview" })
    await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent({ ...agentInput, language: "English" })
        yield* (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } })
      }),
    )
    expect(calls.tokens[0].languageCode).toBeUndefined()
  })

  test("a failed token mint deletes the room it created and stores nothing", async () => {
    const { calls, run } = setup({ tokenFails: true })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const error = yield* Effect.flip(
          (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } }),
        )
        return { error, row: yield* stored(orgId, calls.requested[0]) }
      }),
    )
    expect(result.error._tag).toBe("VoiceGeminiEphemeralFailed")
    expect(result.row).toEqual(Option.none())
    expect(calls.created).toHaveLength(1)
    expect(calls.deleted).toEqual(calls.created)
  })

  test("a failed room creation is a LiveKit error with nothing stored", async () => {
    const { calls, run } = setup({ roomFails: true })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const error = yield* Effect.flip(
          (yield* Sessions).start(orgId, { agent_id: agentId, participant: { identity: "u" } }),
        )
        return { error, row: yield* stored(orgId, calls.requested[0]) }
      }),
    )
    expect(result.error._tag).toBe("VoiceLiveKitFailed")
    expect(calls.requested).toHaveLength(1)
    expect(result.row).toEqual(Option.none())
    expect(calls.deleted).toEqual([])
  })

  test("the ttl rule is checked before any lookup or upstream call", async () => {
    const { calls, run } = setup()
    const error = await run(
      Effect.flip(
        Effect.flatMap(Sessions, (s) =>
          s.start(OrgId.make(crypto.randomUUID()), {
            agent_id: AgentId.make(crypto.randomUUID()),
            participant: { identity: "u" },
            max_duration_seconds: 900,
          }),
        ),
      ),
    )
    expect(error._tag).toBe("VoiceSessionTtlTooShort")
    expect(error.param).toBe("ttl_seconds")
    expect(calls.requested).toEqual([])
  })

  test("an agent of another organization, or a deleted one, is not found", async () => {
    const { calls, run } = setup()
    const errors = await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const sessions = yield* Sessions
        const start = (org: OrgId) =>
          Effect.flip(sessions.start(org, { agent_id: agentId, participant: { identity: "u" } }))
        const otherOrg = yield* start(OrgId.make(crypto.randomUUID()))
        yield* (yield* Agents).remove(orgId, agentId)
        return [otherOrg, yield* start(orgId)]
      }),
    )
    for (const error of errors) expect(error).toMatchObject({ _tag: "VoiceAgentNotFound", param: "agent_id" })
    expect(calls.requested).toEqual([])
  })
})

describe("complete", () => {
  test("retries unparseable output once and validates the result", async () => {
    const { calls, run } = setup({ replies: ["not json", '{"budget": 500, "company": null}'] })
    const session = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        yield* TestClock.adjust("30 seconds")
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript, duration_seconds: 30 })
      }),
    )
    expect(session).toMatchObject({
      status: "completed",
      results: { budget: 500, company: null },
      extraction_warnings: [],
      transcript,
      duration_seconds: 30,
      created_at: 0,
      completed_at: 30,
    })
    expect(calls.json).toHaveLength(2)
    expect(calls.json[0].prompt).toContain("What is your budget?")
    expect(calls.json[0].prompt).toContain("user: About 500 a month.")
  })

  test("a re-ask that fails (its budget spent) keeps the first reply: completed with a warning, not failed", async () => {
    const { calls, run } = setup({ replies: ["not json", new Error("gave up after its 12 ms retry budget")] })
    const session = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript })
      }),
    )
    expect(session).toMatchObject({ status: "completed", results: {}, error_log: [] })
    expect(session.extraction_warnings[0]).toContain("not valid JSON")
    expect(calls.json).toHaveLength(2)
  })

  test("schema violations become warnings mirrored into metadata", async () => {
    const { run } = setup({ replies: ['{"budget": "lots", "company": null}'] })
    const session = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript })
      }),
    )
    expect(session.status).toBe("completed")
    expect(session.extraction_warnings.length).toBeGreaterThan(0)
    expect(session.extraction_warnings[0]).toContain("/budget")
    expect(session.metadata.pi_extraction_warnings).toEqual(session.extraction_warnings)
  })

  test("an upstream failure fails the session but keeps the transcript", async () => {
    const { run } = setup({ replies: [new Error("503 from Gemini")] })
    const { error, row } = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const error = yield* Effect.flip((yield* Sessions).complete(orgId, sessionId, { transcript }))
        const row = yield* (yield* SessionsRepo).find({ orgId, id: sessionId })
        return { error, row }
      }),
    )
    expect(error._tag).toBe("VoiceResultExtractionFailed")
    const stored = Option.getOrThrow(row)
    expect(stored.status).toBe("failed")
    expect(stored.transcript).toEqual(transcript)
    expect(stored.error_log[0].code).toBe("voice_result_extraction_failed")
  })

  test("an agent without an output schema gets a transcript summary and no model call", async () => {
    const { calls, run } = setup()
    const session = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne({ name: "Plain", instructions: "Chat." })
        return yield* (yield* Sessions).complete(orgId, sessionId, { transcript })
      }),
    )
    expect(session.results).toEqual({
      transcript_summary: "agent: What is your budget? | user: About 500 a month.",
    })
    expect(calls.json).toHaveLength(0)
  })

  test("of concurrent completes one claims; the same transcript gets its outcome, another one 409", async () => {
    const { calls, run } = setup({ replies: ['{"budget": 1, "company": null}'] })
    const outcomes = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const sessions = yield* Sessions
        const other = [{ role: "user" as const, text: "something else" }]
        return yield* Effect.all(
          Array.from({ length: 8 }, (_, i) =>
            Effect.either(sessions.complete(orgId, sessionId, { transcript: i < 6 ? transcript : other })),
          ),
          { concurrency: "unbounded" },
        )
      }),
    )
    // Whichever transcript was claimed, every complete sending it shares the one outcome.
    const sameAsClaimed = (i: number) => (Either.isRight(outcomes[0]) ? i < 6 : i >= 6)
    outcomes.forEach((outcome, i) => {
      if (sameAsClaimed(i)) expect(Either.getOrThrow(outcome).results).toEqual({ budget: 1, company: null })
      else expect(Either.isLeft(outcome) && outcome.left._tag).toBe("VoiceSessionNotActive")
    })
    expect(calls.json).toHaveLength(1)
  })

  test("an unknown session, or another organization's, is not found and stays active", async () => {
    const { run } = setup()
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const sessions = yield* Sessions
        const other = OrgId.make(crypto.randomUUID())
        const errors = yield* Effect.all([
          Effect.flip(sessions.complete(other, sessionId, { transcript })),
          Effect.flip(sessions.read(other, sessionId, false, 1)),
        ])
        return { errors, row: yield* sessions.read(orgId, sessionId, false, 1) }
      }),
    )
    for (const error of result.errors) expect(error._tag).toBe("VoiceSessionNotFound")
    expect(result.row).toMatchObject({ status: "active", transcript: null })
  })
})

describe("long-poll", () => {
  test("a waiter is woken by the completion, and one without completion times out", async () => {
    const { run } = setup({ replies: ['{"budget": 2, "company": null}'] })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessions, hub, a, b } = yield* twoSessions
        // Under a TestClock that only the test moves, no wait can end by its timeout by itself.
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
      }),
    )
    expect(result.woke.status).toBe("completed")
    expect(result.early._tag).toBe("None")
    expect(result.timedOut.status).toBe("active")
    expect(result.left).toBe(0)
  })

  test("waiters on one session share one re-read when it completes; nothing reads while they wait", async () => {
    const { reads, run } = setup({ replies: ['{"budget": 2, "company": null}'] })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessions, hub, a, b } = yield* twoSessions
        const start = reads.count
        const onA = yield* Effect.forEach(Array.from({ length: 50 }), () =>
          Effect.fork(sessions.read(orgId, a.session_id, true, 10)),
        )
        const onB = yield* Effect.forEach(Array.from({ length: 3 }), () =>
          Effect.fork(sessions.read(orgId, b.session_id, true, 10)),
        )
        yield* waitingOn(a.session_id, 50)
        yield* waitingOn(b.session_id, 3)
        // Waiters registered in one round share its first read (one per session), then only wait.
        yield* until(Effect.sync(() => reads.count === start + 2))
        yield* TestClock.adjust("9 seconds")
        const whileWaiting = reads.count - start - 2
        yield* sessions.complete(orgId, a.session_id, { transcript })
        const woke = yield* Effect.forEach(onA, Fiber.join)
        const rereads = reads.count - start - 2
        const otherStillWaiting = yield* Effect.forEach(onB, Fiber.poll)
        const stillCounted = yield* hub.waiting(b.session_id)
        // Disconnecting clients release their waits.
        yield* Effect.forEach(onB, Fiber.interrupt)
        return {
          whileWaiting,
          rereads,
          statuses: new Set(woke.map((s) => s.status)),
          sameRow: woke.every((s) => s === woke[0]),
          otherStillWaiting: otherStillWaiting.every(Option.isNone),
          stillCounted,
          left: [yield* hub.waiting(a.session_id), yield* hub.waiting(b.session_id)],
        }
      }),
    )
    expect(result.whileWaiting).toBe(0)
    expect(result.rereads).toBe(1)
    expect([...result.statuses]).toEqual(["completed"])
    expect(result.sameRow).toBe(true)
    expect(result.otherStillWaiting).toBe(true)
    expect(result.stillCounted).toBe(3)
    expect(result.left).toEqual([0, 0])
  })

  test("a round's first read that failed is not reused: the round's next waiter reads again", async () => {
    const { reads, run } = setup()
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessions, hub, a } = yield* twoSessions
        // something holds the round open meanwhile
        yield* hub.register(a.session_id)
        const start = reads.count
        reads.failing = 1
        const failed = yield* Effect.either(sessions.read(orgId, a.session_id, true, 10))
        const afterFailure = reads.count - start
        const waiters = yield* Effect.forEach([1, 2], () =>
          Effect.fork(sessions.read(orgId, a.session_id, true, 10)),
        )
        yield* waitingOn(a.session_id, 3)
        const afterWaiters = reads.count - start
        yield* Effect.forEach(waiters, Fiber.interrupt)
        return { failed: Either.isLeft(failed) ? failed.left._tag : "ok", afterFailure, afterWaiters }
      }),
    )
    expect(result.failed).toBe("ServiceUnavailable")
    expect(result.afterFailure).toBe(1)
    // one read again for the first waiter after the failure, none for the second
    expect(result.afterWaiters).toBe(2)
  })

  test("a round's first read stands for its later waiters for a second, then they read again", async () => {
    const { reads, run } = setup()
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessions, a } = yield* twoSessions
        const start = reads.count
        const wait = Effect.fork(sessions.read(orgId, a.session_id, true, 60))
        const first = yield* Effect.forEach([1, 2], () => wait)
        yield* waitingOn(a.session_id, 2)
        const shared = reads.count - start
        yield* TestClock.adjust("1 second")
        const later = yield* wait
        yield* waitingOn(a.session_id, 3)
        const afterASecond = reads.count - start
        yield* Effect.forEach([...first, later], Fiber.interrupt)
        return { shared, afterASecond }
      }),
    )
    expect(result.shared).toBe(1)
    expect(result.afterASecond).toBe(2)
  })

  test("while the hub may miss other instances' changes, every waiter reads for itself", async () => {
    const { reads, run } = setup({ deaf: true })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessions, a } = yield* twoSessions
        const start = reads.count
        const waiters = yield* Effect.forEach([1, 2, 3], () =>
          Effect.fork(sessions.read(orgId, a.session_id, true, 10)),
        )
        yield* waitingOn(a.session_id, 3)
        yield* until(Effect.sync(() => reads.count - start === 3))
        yield* Effect.forEach(waiters, Fiber.interrupt)
        return reads.count - start
      }),
    )
    expect(result).toBe(3)
  })

  test("a change while woken waiters re-read is not missed: they wait again and wake again", async () => {
    const { run } = setup()
    const result = await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const sessions = yield* Sessions
        const hub = yield* CompletionHub
        const a = yield* sessions.start(orgId, { agent_id: agentId, participant: { identity: "a" } })
        const waiter = yield* Effect.fork(sessions.read(orgId, a.session_id, true, 10))
        yield* waitingOn(a.session_id, 1)
        // Two wake-ups with no change: the waiter re-reads, sees `active`, waits again.
        yield* hub.wake(a.session_id)
        yield* hub.wake(a.session_id)
        yield* until(Effect.map(Fiber.status(waiter), (s) => s._tag === "Suspended"))
        const afterSpuriousWakes = yield* Fiber.poll(waiter)
        yield* sessions.complete(orgId, a.session_id, { transcript })
        return { afterSpuriousWakes, woke: yield* Fiber.join(waiter) }
      }),
    )
    expect(result.afterSpuriousWakes._tag).toBe("None")
    expect(result.woke.status).toBe("completed")
  })

  test("the sweeper expires sessions past expires_at + grace and wakes their waiters", async () => {
    const { run } = setup()
    const result = await run(
      Effect.gen(function* () {
        const { orgId, agentId } = yield* tenantWithAgent()
        const sessions = yield* Sessions
        const s = yield* sessions.start(orgId, {
          agent_id: agentId,
          participant: { identity: "x" },
          ttl_seconds: 60,
        })
        // At expires_at itself the session is still active (the grace here is 0).
        yield* TestClock.adjust("60 seconds")
        const atDeadline = yield* sweepOnce
        yield* TestClock.adjust("1 millis")
        // From here the clock stands still: only the sweep can end the wait.
        const waiter = yield* Effect.fork(sessions.read(orgId, s.session_id, true, 10))
        yield* waitingOn(s.session_id, 1)
        const swept = yield* sweepOnce
        const woke = yield* Fiber.join(waiter)
        const late = yield* Effect.flip(sessions.complete(orgId, s.session_id, { transcript }))
        return { atDeadline, swept, woke, late }
      }),
    )
    expect(result.atDeadline.expired).toBe(0)
    expect(result.swept.expired).toBe(1)
    expect(result.woke.status).toBe("expired")
    expect(result.late._tag).toBe("VoiceSessionNotActive")
  })

  test("past its grace a session cannot be completed, even before the sweep", async () => {
    const { run } = setup()
    const late = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        yield* TestClock.adjust("601 seconds")
        return yield* Effect.flip((yield* Sessions).complete(orgId, sessionId, { transcript }))
      }),
    )
    expect(late._tag).toBe("VoiceSessionNotActive")
    expect(late.message).toContain("has expired")
  })

  test("a completion whose instance died is retried once its lease runs out", async () => {
    const { logs, run } = setup({ replies: ['{"budget": 3, "company": null}'] })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const repo = yield* SessionsRepo
        // Claimed by an instance that then died mid-extraction.
        yield* repo.claim({ orgId, id: sessionId, transcript, duration_seconds: 10, graceSeconds: 3600 })
        yield* TestClock.adjust(`${COMPLETION_LEASE_SECONDS} seconds`)
        const withinLease = yield* sweepOnce
        yield* TestClock.adjust("1 millis")
        const afterLease = yield* sweepOnce
        // the takeover runs on its own, not inside the sweep
        yield* until(
          Effect.map(repo.find({ orgId, id: sessionId }), (row) =>
            Option.exists(row, (r) => r.status === "completed"),
          ),
        )
        return { withinLease, afterLease, row: yield* repo.find({ orgId, id: sessionId }) }
      }),
    )
    expect(result.withinLease.retried).toBe(0)
    expect(result.afterLease.retried).toBe(1)
    const stored = Option.getOrThrow(result.row)
    expect(stored.status).toBe("completed")
    expect(stored.results).toEqual({ budget: 3, company: null })
    expect(
      logs().some((line) => line.includes(`retrying the completion of session ${stored.session_id}`)),
    ).toBe(true)
  })

  test("a running completion renews its lease: the sweeper leaves it alone", async () => {
    const { calls, run } = setup({ replies: ['{"budget": 4, "company": null}'] })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const sessions = yield* Sessions
        const repo = yield* SessionsRepo
        const claimed = Option.getOrThrow(
          yield* repo.claim({ orgId, id: sessionId, transcript, duration_seconds: 10, graceSeconds: 3600 }),
        )
        // A renewal past the lease keeps the claim: the sweep takes over only claims that stopped beating.
        yield* TestClock.adjust(`${COMPLETION_LEASE_SECONDS - 1} seconds`)
        const renewed = yield* repo.renewLease({
          id: sessionId,
          claimed_at: claimed.claimed_at ?? new Date(0),
        })
        yield* TestClock.adjust("2 seconds")
        const sweep = yield* sweepOnce
        const other = yield* repo.renewLease({ id: sessionId, claimed_at: new Date(12_345) })
        yield* sessions.finishClaimed(claimed)
        return { renewed, sweep, other }
      }),
    )
    expect(Option.isSome(result.renewed)).toBe(true)
    expect(result.sweep.retried).toBe(0)
    // another claim's heartbeat finds nothing to renew
    expect(Option.isNone(result.other)).toBe(true)
    expect(calls.json).toHaveLength(1)
  })
})

describe("completion leases", () => {
  test("a completion still running renews its lease: past the lease the sweep leaves it alone", async () => {
    const extractDelayMs = (COMPLETION_LEASE_SECONDS + 15) * 1000
    const { calls, run } = setup({ replies: ['{"budget": 5, "company": null}'], extractDelayMs })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const sessions = yield* Sessions
        const completing = yield* Effect.fork(sessions.complete(orgId, sessionId, { transcript }))
        // the extraction runs past the lease; its heartbeat keeps the claim (5 s beats)
        for (let s = 0; s < COMPLETION_LEASE_SECONDS + 10; s += 5) {
          yield* Effect.yieldNow() // let the fibers reach their sleeps
          yield* TestClock.adjust("5 seconds")
        }
        const sweep = yield* sweepOnce
        yield* TestClock.adjust("10 seconds")
        const done = yield* Fiber.join(completing)
        return { sweep, done }
      }),
    )
    expect(result.sweep.retried).toBe(0)
    expect(result.done.results).toEqual({ budget: 5, company: null })
    expect(calls.json).toHaveLength(1)
  })
})

describe("a lost claim", () => {
  test("a completion whose claim was taken over stops its extraction at the next beat", async () => {
    const extractDelayMs = 60_000
    const { calls, run } = setup({ replies: ['{"budget": 6, "company": null}'], extractDelayMs })
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const repo = yield* SessionsRepo
        const now = yield* Clock.currentTimeMillis
        const completing = yield* Effect.fork((yield* Sessions).complete(orgId, sessionId, { transcript }))
        // extracting (its model call sleeps 60 s) with its heartbeat due in 5 s
        yield* asleepUntil(now + extractDelayMs, now + 5_000)
        // another instance takes the claim over (as after an outage longer than the lease)
        yield* TestClock.adjust("1 millis")
        const takenOver = yield* repo.reclaimStale(0)
        yield* TestClock.adjust("5 seconds")
        // The next beat finds the claim gone: the extraction is stopped, not left to run its 60 s, and
        // the complete goes on to wait (120 s) for the new owner's outcome.
        yield* until(
          Effect.map(TestClock.sleeps(), (sleeps) => Chunk.some(sleeps, (t) => t >= now + 120_000)),
        )
        const row = yield* repo.find({ orgId, id: sessionId })
        yield* Fiber.interrupt(completing)
        return { takenOver, row }
      }),
    )
    expect(Option.isSome(result.takenOver)).toBe(true)
    // the old owner recorded nothing: the session is the new owner's to finish
    expect(Option.map(result.row, (r) => r.status)).toEqual(Option.some("completing"))
    // its model call (which answers after 60 s) was stopped before it answered
    expect(calls.json).toHaveLength(0)
  })
})

describe("webhook events", () => {
  const event = (sessionId: string, id = `evt_${crypto.randomUUID()}`) => ({
    id,
    event: "participant_joined",
    createdAt: 1_700_000_000,
    room: { name: `voice_${sessionId}`, sid: "RM_1" },
    participant: { identity: "u1", sid: "PA_1" },
  })

  test("are recorded once per event id, for known sessions only", async () => {
    const { run } = setup()
    const result = await run(
      Effect.gen(function* () {
        const { orgId, sessionId } = yield* startOne()
        const webhooks = yield* Webhooks
        const first = event(sessionId)
        const handled = yield* Effect.all([
          webhooks.handle(first),
          webhooks.handle(first),
          webhooks.handle(event(crypto.randomUUID())),
        ])
        return { handled, row: yield* (yield* Sessions).read(orgId, sessionId, false, 1) }
      }),
    )
    expect(result.handled).toEqual([true, false, false])
    expect(result.row.metadata).toMatchObject({
      livekit_room_sid: "RM_1",
      livekit_call_started_at: 1_700_000_000,
      livekit_last_participant_identity: "u1",
    })
  })

  test("the sweeper forgets event ids past their retention, and keeps recent ones", async () => {
    const { run } = setup()
    const again = await run(
      Effect.gen(function* () {
        const { sessionId } = yield* startOne()
        const webhooks = yield* Webhooks
        const old = event(sessionId)
        const recent = event(sessionId)
        yield* webhooks.handle(old)
        yield* TestClock.adjust(`${WEBHOOK_EVENT_RETENTION_SECONDS + 1} seconds`)
        yield* webhooks.handle(recent)
        yield* sweepOnce
        // A forgotten id counts as new again; a kept one is still a redelivery.
        return yield* Effect.all([webhooks.handle(old), webhooks.handle(recent)])
      }),
    )
    expect(again).toEqual([true, false])
  })
})
