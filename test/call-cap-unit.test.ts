/**
 * The call cap over the in-memory repositories, fake upstreams and a TestClock: the start asks for a
 * token bounded by cap + grace and schedules the room's deletion, which the sweep does when the clock
 * gets there (not a second earlier), once.
 */
import { expect, test } from "bun:test"
import { Effect, Layer, Option, TestClock, TestContext } from "effect"
import { Agents } from "../src/Agents.ts"
import { AppConfig } from "../src/Config.ts"
import type { Behaviors } from "../src/Domain/Agent.ts"
import { OrgId } from "../src/Domain/Ids.ts"
import { Gemini, type LiveTokenSpec } from "../src/Gemini.ts"
import { Lifecycle } from "../src/Lifecycle.ts"
import { LiveKit } from "../src/LiveKit.ts"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"
import { RoomCleanups } from "../src/Sessions/RoomCleanups.ts"
import { sweepDueRooms } from "../src/Sessions/Sweeper.ts"
import { Sessions } from "../src/Sessions.ts"
import { Transaction } from "../src/Transaction.ts"
import { captureLogs } from "./support/logs.ts"

const GRACE = 20

const setup = () => {
  const calls = { tokens: [] as LiveTokenSpec[], deleted: [] as string[] }
  const livekit = Layer.succeed(LiveKit, {
    clientUrl: "wss://livekit.test",
    createRoom: () => Effect.void,
    deleteRoom: (name) => Effect.sync(() => void calls.deleted.push(name)),
    listRooms: Effect.succeed([]),
    participantToken: () => Effect.succeed("jwt"),
    verifyWebhook: () => Effect.die("unused"),
  })
  const gemini = Layer.succeed(Gemini, {
    mintLiveToken: (spec) =>
      Effect.sync(() => void calls.tokens.push(spec)).pipe(
        Effect.as({ url: "wss://gemini.test/live", token: "auth_tokens/test" }),
      ),
    generateJson: () => Effect.die("unused"),
  })
  const layer = Sessions.layer.pipe(
    // the same in-memory tables for the service and for the test's own reads and sweeps
    Layer.provideMerge(Layer.mergeAll(SessionsRepo.Test, RoomCleanups.Test, Transaction.Test)),
    Layer.provideMerge(Lifecycle.Live),
    Layer.provideMerge(Layer.mergeAll(Agents.Test, CompletionHub.Local, livekit, gemini)),
    Layer.provideMerge(AppConfig.layer({ callCapGraceSeconds: GRACE })),
    Layer.provide(captureLogs().layer),
  )
  const run = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof layer>>) =>
    Effect.runPromise(effect.pipe(Effect.provide(layer), Effect.provide(TestContext.TestContext)))
  return { calls, run }
}

/** Starts a session of a new agent with these behaviors (on the TestClock, at 0). */
const startWith = (behaviors: Behaviors, maxDuration?: number) =>
  Effect.gen(function* () {
    const orgId = OrgId.make(crypto.randomUUID())
    const agent = yield* (yield* Agents).create(orgId, { name: "A", instructions: "Talk.", behaviors })
    const started = yield* (yield* Sessions).start(orgId, {
      agent_id: agent.agent_id,
      participant: { identity: "u" },
      ...(maxDuration === undefined ? {} : { max_duration_seconds: maxDuration }),
    })
    const metadata = Effect.map(
      Effect.flatMap(SessionsRepo, (repo) => repo.find({ orgId, id: started.session_id })),
      Option.map((s) => s.metadata),
    )
    return { room: `voice_${started.session_id}`, metadata }
  })

test("the room is deleted when cap + grace has passed, not before, once; the metadata records it", async () => {
  const { calls, run } = setup()
  const result = await run(
    Effect.gen(function* () {
      const { room, metadata } = yield* startWith({ max_duration_seconds: 90 })
      const atStart = yield* metadata
      yield* TestClock.adjust(`${90 + GRACE - 1} seconds`)
      const early = yield* sweepDueRooms
      const deletedEarly = [...calls.deleted]
      yield* TestClock.adjust("1 second")
      const due = yield* sweepDueRooms
      const again = yield* sweepDueRooms
      return { room, atStart, early, deletedEarly, due, again, after: yield* metadata }
    }),
  )
  expect(calls.tokens).toMatchObject([{ ttlSeconds: 600, callCapSeconds: 90 + GRACE }])
  expect(result.atStart).toEqual(Option.some({ call_cap_enforced_at: 90 + GRACE }))
  expect([result.early, result.deletedEarly]).toEqual([0, []])
  expect([result.due, result.again]).toEqual([1, 0])
  expect(calls.deleted).toEqual([result.room])
  expect(result.after).toEqual(
    Option.some({ call_cap_enforced_at: 90 + GRACE, call_cap_room_deleted_at: 90 + GRACE }),
  )
})

test("an agent that opts out, or a session without a cap, schedules nothing and gets an unbounded token", async () => {
  const { calls, run } = setup()
  const result = await run(
    Effect.gen(function* () {
      const optedOut = yield* startWith({ max_duration_seconds: 90, enforce_max_duration: false })
      const uncapped = yield* startWith({})
      // a cap from the start body is enforced unless the agent opts out
      const bodyCap = yield* startWith({}, 120)
      yield* TestClock.adjust("1 hour")
      const swept = yield* sweepDueRooms
      return { swept, metadata: [yield* optedOut.metadata, yield* uncapped.metadata], bodyCap }
    }),
  )
  expect(calls.tokens.map((t) => t.callCapSeconds)).toEqual([undefined, undefined, 120 + GRACE])
  expect(result.metadata).toEqual([Option.some({}), Option.some({})])
  expect(result.swept).toBe(1)
  expect(calls.deleted).toEqual([result.bodyCap.room])
})
