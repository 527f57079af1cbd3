/**
 * The server-enforced call cap: a capped session's Gemini token stops at cap + grace, and its LiveKit
 * room is deleted then by scheduled work in the database, done once by whichever instance claims it
 * (also after a restart); an agent that opts out, and a session without a cap, get neither.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { Effect, Exit, Option, Redacted, Schema } from "effect"
import type { AgentId, SessionId } from "../src/Domain/Ids.ts"
import { startLocalLiveKit } from "../src/Local/LiveKitServer.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"
import { RoomCleanups } from "../src/Sessions/RoomCleanups.ts"
import { sweepDueRooms } from "../src/Sessions/Sweeper.ts"
import { Transaction } from "../src/Transaction.ts"
import { count, query } from "./support/rows.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { eventually, jwtClaims, sessionRow, TRANSCRIPT } from "./support/sessions.ts"

const GRACE = 30

// One LiveKit for every instance, as in production: an instance deletes rooms another created.
const livekit = startLocalLiveKit()
const upstream = {
  livekitUrl: Option.some(livekit.url),
  livekitApiKey: Option.some(livekit.apiKey),
  livekitApiSecret: Option.some(Redacted.make(livekit.apiSecret)),
  callCapGraceSeconds: GRACE,
}

let a: TestServer
let b: TestServer
beforeAll(async () => {
  ;[a, b] = await Promise.all([startServer(upstream), startServer(upstream)])
})
afterAll(async () => {
  await Promise.all([a.dispose(), b.dispose()])
  await livekit.stop()
})

/** A tenant, its typed client and an agent with these behaviors. */
const tenantWithAgent = async (s: TestServer, behaviors: Record<string, unknown>) => {
  const { apiKey, orgId } = await s.newTenant()
  const client = await s.client(apiKey)
  const agent = await Effect.runPromise(
    client.agents.create({ payload: { name: "Capped", instructions: "Keep it short.", behaviors } }),
  )
  return { client, orgId, agentId: agent.data.agent_id }
}

type Client = Awaited<ReturnType<typeof tenantWithAgent>>["client"]

/** Starts a session; with the window (ms) in which it was started and the token request Gemini got. */
const start = async (
  s: TestServer,
  client: Client,
  agentId: AgentId,
  extra: { ttl_seconds?: number; max_duration_seconds?: number } = {},
) => {
  s.gemini.clear()
  const before = Date.now()
  const started = await Effect.runPromise(
    client.sessions.start({ payload: { agent_id: agentId, participant: { identity: "caller" }, ...extra } }),
  )
  const after = Date.now()
  const request = s.gemini.requests.find((r) => r.method === "auth_tokens")
  const token = request?.body as { expireTime: string; newSessionExpireTime: string }
  const id = started.data.session_id
  const claims = jwtClaims(started.data.connection.livekit.token)
  // how long the participant JWT lets the caller join (or rejoin) the room
  const joinSeconds = (claims.exp as number) - (claims.nbf as number)
  return { id, room: `voice_${id}`, before, after, token, joinSeconds }
}

const Cleanup = Schema.Struct({
  room: Schema.String,
  session_id: Schema.NullOr(Schema.String),
  next_attempt_at: Schema.DateFromSelf,
})
const cleanupOf = (s: TestServer, room: string) =>
  query(
    s,
    Cleanup,
    (sql) =>
      sql`SELECT room, session_id::text AS session_id, next_attempt_at FROM room_cleanups WHERE room = ${room}`,
  )
/** Makes a scheduled deletion due now, instead of waiting for it. */
const dueNow = (s: TestServer, room: string) =>
  count(
    s,
    (sql) => sql`WITH u AS (UPDATE room_cleanups SET next_attempt_at = now() WHERE room = ${room} RETURNING 1)
      SELECT count(*)::int AS n FROM u`,
  )
const sweep = (s: TestServer) =>
  s.run(sweepDueRooms.pipe(Effect.provide([RoomCleanups.Live, SessionsRepo.Live])))
const deletes = (room: string) => livekit.deletions.filter((r) => r === room).length
const metadataOf = async (client: Client, id: SessionId) =>
  (await Effect.runPromise(client.sessions.get({ path: { id }, urlParams: {} }))).data.metadata

test("a capped session's token stops at cap + grace, and its room's deletion is scheduled with its row", async () => {
  const { client, agentId } = await tenantWithAgent(a, { max_duration_seconds: 120 })
  const { id, room, before, after, token, joinSeconds } = await start(a, client, agentId, {
    ttl_seconds: 900,
  })

  // The token's whole window (opening and messages) is the cap plus its grace, not the 900 s ttl.
  const window = (120 + GRACE) * 1000
  expect(Date.parse(token.expireTime)).toBeWithin(before + window, after + window + 1)
  expect(token.newSessionExpireTime).toBe(token.expireTime)
  // LiveKit would create the deleted room anew for a late join: the LiveKit JWT ends with the window too
  expect(joinSeconds).toBe(120 + GRACE)

  // The schedule is the room's cleanup, due exactly cap + grace after the session's creation.
  const row = await sessionRow(a, id)
  expect(await cleanupOf(a, room)).toEqual([
    { room, session_id: id, next_attempt_at: new Date(row.created_at.getTime() + window) },
  ])
  const createdAt = Math.floor(row.created_at.getTime() / 1000)
  expect(await metadataOf(client, id)).toEqual({ call_cap_enforced_at: createdAt + 120 + GRACE })
  expect(livekit.rooms.has(room)).toBe(true)
  // not due yet: a sweep leaves it
  await sweep(a)
  expect(livekit.rooms.has(room)).toBe(true)
  expect(await cleanupOf(a, room)).toHaveLength(1)
  // tidy: the scheduled deletion is done here rather than by a later test file's sweep
  await dueNow(a, room)
  await sweep(a)
})

test("when due, the room is deleted once across two instances, recorded in metadata; the session stays open", async () => {
  const { client, agentId } = await tenantWithAgent(a, { max_duration_seconds: 60 })
  const { id, room } = await start(a, client, agentId)
  expect(await dueNow(a, room)).toBe(1)

  // Both instances sweep at the same moment: one claims the cleanup, the other skips it.
  await Promise.all([sweep(a), sweep(b), sweep(a), sweep(b)])
  expect(livekit.rooms.has(room)).toBe(false)
  expect(deletes(room)).toBe(1)
  expect(await cleanupOf(a, room)).toEqual([])
  const metadata = await metadataOf(client, id)
  const createdAt = Math.floor((await sessionRow(a, id)).created_at.getTime() / 1000)
  expect(metadata).toEqual({
    call_cap_enforced_at: createdAt + 60 + GRACE,
    call_cap_room_deleted_at: expect.any(Number),
  })
  expect(metadata.call_cap_room_deleted_at as number).toBeGreaterThanOrEqual(createdAt)

  // Nothing is left to do: a later sweep deletes nothing more.
  await sweep(b)
  expect(deletes(room)).toBe(1)
  // The cap ended the call, not the session: the client still posts its transcript.
  const got = await Effect.runPromise(client.sessions.get({ path: { id }, urlParams: {} }))
  expect(got.data.status).toBe("active")
  const completed = await Effect.runPromise(
    client.sessions.complete({ path: { id }, payload: { transcript: TRANSCRIPT, duration_seconds: 60 } }),
  )
  expect(completed.status).toBe("completed")
  expect(completed.data.metadata).toEqual(metadata)
})

test("a deletion scheduled by an instance that stopped is done by another one's own sweeper", async () => {
  const first = await startServer(upstream)
  const { client, agentId } = await tenantWithAgent(first, { max_duration_seconds: 60 })
  const { id, room } = await start(first, client, agentId)
  await first.dispose()
  expect(await dueNow(a, room)).toBe(1)

  // A new instance on the same database, sweeping in the background as a server does.
  const second = await startServer({ ...upstream, roomSweepSeconds: 1 })
  try {
    await eventually(async () => (await cleanupOf(second, room)).length === 0)
    expect(livekit.rooms.has(room)).toBe(false)
    expect(deletes(room)).toBe(1)
    expect((await sessionRow(second, id)).metadata).toMatchObject({
      call_cap_room_deleted_at: expect.any(Number),
    })
  } finally {
    await second.dispose()
  }
})

test("an agent that opts out gets no schedule and a token for the whole ttl; a PATCH opts back in", async () => {
  const { client, agentId } = await tenantWithAgent(a, {
    max_duration_seconds: 120,
    enforce_max_duration: false,
  })
  const agent = await Effect.runPromise(client.agents.get({ path: { id: agentId } }))
  expect(agent.data.behaviors).toEqual({ max_duration_seconds: 120, enforce_max_duration: false })

  const optedOut = await start(a, client, agentId, { ttl_seconds: 900 })
  expect(Date.parse(optedOut.token.expireTime)).toBeWithin(
    optedOut.before + 900_000,
    optedOut.after + 900_001,
  )
  expect(await cleanupOf(a, optedOut.room)).toEqual([])
  expect(optedOut.joinSeconds).toBe(900)
  expect(await metadataOf(client, optedOut.id)).toEqual({})

  const patched = await Effect.runPromise(
    client.agents.update({
      path: { id: agentId },
      payload: { behaviors: { max_duration_seconds: 120, enforce_max_duration: true } },
    }),
  )
  expect(patched.data.behaviors.enforce_max_duration).toBe(true)
  const capped = await start(a, client, agentId, { ttl_seconds: 900 })
  expect(Date.parse(capped.token.expireTime)).toBeWithin(capped.before + 150_000, capped.after + 150_001)
  expect(await cleanupOf(a, capped.room)).toMatchObject([{ session_id: capped.id }])
  expect(capped.joinSeconds).toBe(150)
  // tidy: the scheduled deletion is done here rather than by a later test file's sweep
  await dueNow(a, capped.room)
  await sweep(a)
})

test("without a cap nothing is scheduled; a cap from the start body is enforced, the token bounded by the ttl", async () => {
  const { client, agentId } = await tenantWithAgent(a, {})
  const uncapped = await start(a, client, agentId, { ttl_seconds: 600 })
  expect(Date.parse(uncapped.token.expireTime)).toBeWithin(
    uncapped.before + 600_000,
    uncapped.after + 600_001,
  )
  expect(await cleanupOf(a, uncapped.room)).toEqual([])
  expect(await metadataOf(client, uncapped.id)).toEqual({})

  // cap + grace (630 s) is past the ttl: the token ends with the ttl, the room at cap + grace
  const capped = await start(a, client, agentId, { ttl_seconds: 600, max_duration_seconds: 600 })
  expect(Date.parse(capped.token.expireTime)).toBeWithin(capped.before + 600_000, capped.after + 600_001)
  const created = (await sessionRow(a, capped.id)).created_at.getTime()
  expect(await cleanupOf(a, capped.room)).toEqual([
    { room: capped.room, session_id: capped.id, next_attempt_at: new Date(created + 630_000) },
  ])
  await dueNow(a, capped.room)
  await sweep(a)
  expect(livekit.rooms.has(capped.room)).toBe(false)
})

test("the schedule is written in the transaction of the session row: when it fails, no row is left", async () => {
  const { orgId, agentId } = await tenantWithAgent(a, {})
  const id = crypto.randomUUID()
  const room = `voice_${id}`
  const now = Date.now()
  const write = Effect.gen(function* () {
    const { atomically } = yield* Transaction
    const repo = yield* SessionsRepo
    const cleanups = yield* RoomCleanups
    // a cleanup already recorded for the room makes the schedule's INSERT fail, after the row's
    yield* cleanups.record({ room, delaySeconds: 3600, error: null })
    return yield* atomically(
      Effect.zipLeft(
        repo.insert({
          id,
          org_id: orgId,
          agent_id: agentId,
          participant: { identity: "caller" },
          context: null,
          system_instruction: "Talk.",
          max_duration_seconds: 60,
          created_at: new Date(now),
          expires_at: new Date(now + 600_000),
          metadata: { call_cap_enforced_at: Math.floor(now / 1000) + 60 + GRACE },
        }),
        cleanups.schedule({ room, sessionId: id, dueAt: new Date(now + (60 + GRACE) * 1000) }),
      ),
    )
  }).pipe(Effect.provide([Transaction.Live, SessionsRepo.Live, RoomCleanups.Live]))
  const exit = await a.run(Effect.exit(write))
  expect(Exit.isFailure(exit)).toBe(true)
  expect(await sessionRow(a, id)).toBeUndefined()
  expect(await cleanupOf(a, room)).toEqual([{ room, session_id: null, next_attempt_at: expect.any(Date) }])
  await count(
    a,
    (sql) => sql`WITH d AS (DELETE FROM room_cleanups WHERE room = ${room} RETURNING 1)
    SELECT count(*)::int AS n FROM d`,
  )
})
