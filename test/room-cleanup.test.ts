/** No LiveKit room outlives a failed start: failed compensations are retried, orphans are swept. */
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import type { LocalRoom } from "../src/Local/LiveKitServer.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"
import { RoomCleanups } from "../src/Sessions/RoomCleanups.ts"
import { sweepRooms } from "../src/Sessions/Sweeper.ts"
import { count, query } from "./support/rows.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { createAgent, startSession } from "./support/sessions.ts"

let s: TestServer
beforeAll(async () => {
  s = await startServer()
})
afterAll(() => s.dispose())
beforeEach(() => {
  s.livekit.clear()
  s.gemini.clear()
})

const sweep = () => s.run(sweepRooms.pipe(Effect.provide([RoomCleanups.Live, SessionsRepo.Live])))
const Cleanup = Schema.Struct({
  room: Schema.String,
  attempts: Schema.Int,
  last_error: Schema.NullOr(Schema.String),
})
const cleanupOf = (room: string) =>
  query(s, Cleanup, (sql) => sql`SELECT room, attempts, last_error FROM room_cleanups WHERE room = ${room}`)
/** Makes a recorded cleanup due now (its backoff is seconds long). */
const dueNow = (room: string) =>
  count(
    s,
    (sql) => sql`WITH u AS (UPDATE room_cleanups SET next_attempt_at = now() WHERE room = ${room} RETURNING 1)
    SELECT count(*)::int AS n FROM u`,
  )
const roomOfOrg = (orgId: string) =>
  [...s.livekit.rooms.values()].filter((room) => JSON.parse(room.metadata).org_id === orgId)

test("a compensating delete that fails is recorded, retried with backoff, and done by the sweeper", async () => {
  const { apiKey, orgId } = await s.newTenant()
  const agentId = await createAgent(s, apiKey)
  s.gemini.inject({ method: "auth_tokens", status: 500, times: 1 })
  // LiveKit refuses deletes until the test lifts it (other files' due cleanups may be swept here too)
  s.livekit.inject({ method: "DeleteRoom", status: 500 })
  const reply = await startSession(s, apiKey, { agent_id: agentId, participant: { identity: "u" } })
  expect(reply.status).toBe(502)
  const [room] = roomOfOrg(orgId)
  expect(room).toBeDefined()
  expect(await cleanupOf(room.name)).toEqual([
    { room: room.name, attempts: 0, last_error: expect.any(String) },
  ])

  // The first retry fails too: recorded again, with its attempt counted.
  // (other test files share the database: only this room's row is asserted on)
  expect(await dueNow(room.name)).toBe(1)
  await sweep()
  expect(await cleanupOf(room.name)).toMatchObject([{ attempts: 1 }])
  expect(s.livekit.rooms.has(room.name)).toBe(true)
  // Not due again at once: the backoff holds it back.
  await sweep()
  expect(await cleanupOf(room.name)).toMatchObject([{ attempts: 1 }])
  expect(s.livekit.rooms.has(room.name)).toBe(true)

  s.livekit.clear()
  expect(await dueNow(room.name)).toBe(1)
  await sweep()
  expect(s.livekit.rooms.has(room.name)).toBe(false)
  expect(await cleanupOf(room.name)).toEqual([])
})

test("a voice_ room without a session, older than a start can take, is deleted; a session's room is kept", async () => {
  const { apiKey, orgId } = await s.newTenant()
  const agentId = await createAgent(s, apiKey)
  const started = await startSession(s, apiKey, { agent_id: agentId, participant: { identity: "u" } })
  expect(started.status).toBe(201)
  const [kept] = roomOfOrg(orgId)
  // A room whose start gave up before its row was written (created late at LiveKit), an hour old.
  const orphan = `voice_${crypto.randomUUID()}`
  const young = `voice_${crypto.randomUUID()}`
  const rooms = s.livekit.rooms as Map<string, LocalRoom>
  const hourAgo = Math.floor(Date.now() / 1000) - 3600
  rooms.set(orphan, { ...kept, name: orphan, sid: "RM_orphan", creationTime: hourAgo })
  rooms.set(young, { ...kept, name: young, sid: "RM_young" })
  rooms.set(kept.name, { ...kept, creationTime: hourAgo })
  const other = "someone-elses-room"
  rooms.set(other, { ...kept, name: other, sid: "RM_other", creationTime: hourAgo })

  const swept = await sweep()
  expect(swept.orphans).toBeGreaterThanOrEqual(1)
  expect(rooms.has(orphan)).toBe(false)
  // a room whose start may still be running, a session's room, and rooms Parley did not name stay
  expect(rooms.has(young)).toBe(true)
  expect(rooms.has(kept.name)).toBe(true)
  expect(rooms.has(other)).toBe(true)
})
