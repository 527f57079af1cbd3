import { Clock, Effect, Layer, Option, Schedule } from "effect"
import { AppConfig } from "../Config.ts"
import { LiveKit } from "../LiveKit.ts"
import { Sessions } from "../Sessions.ts"
import { roomDeleted } from "./CallCap.ts"
import { CompletionHub } from "./CompletionHub.ts"
import { SessionsRepo } from "./Repo.ts"
import { type DueCleanup, RoomCleanups } from "./RoomCleanups.ts"

/**
 * A `completing` claim whose lease was not renewed for this long belongs to an instance that died
 * mid-extraction (a running completion renews it every 5 s); with a sweep every SWEEP_EVERY, its
 * work is taken over within ~30 s.
 */
export const COMPLETION_LEASE_SECONDS = 20
const SWEEP_EVERY = "10 seconds"
/** Stale completions one pass takes over at most (the rest wait for the next pass). */
const TAKEOVERS_PER_SWEEP = 10

/** Webhook event ids are kept this long for deduplication (LiveKit redelivers within minutes). */
export const WEBHOOK_EVENT_RETENTION_SECONDS = 7 * 24 * 3600

/** One pass: expire overdue active sessions, retry stale completions one by one, prune old event ids. */
export const sweepOnce = Effect.gen(function* () {
  const repo = yield* SessionsRepo
  const hub = yield* CompletionHub
  const sessions = yield* Sessions
  const { sessionCompletionGraceSeconds } = yield* AppConfig
  const expired = yield* repo.expireDue(sessionCompletionGraceSeconds)
  yield* Effect.forEach(expired, hub.publish, { discard: true })
  let retried = 0
  while (retried < TAKEOVERS_PER_SWEEP) {
    const stale = yield* repo.reclaimStale(COMPLETION_LEASE_SECONDS)
    if (Option.isNone(stale)) break
    yield* Effect.logWarning(
      `retrying the completion of session ${stale.value.session_id} after a lost lease`,
    )
    // Not waited for: the completions run side by side (each renews its lease) while the sweep goes
    // on. A daemon, so that the end of this pass cannot interrupt one before its detached work starts.
    yield* Effect.forkDaemon(sessions.finishClaimed(stale.value))
    retried += 1
  }
  yield* repo.pruneEvents(WEBHOOK_EVENT_RETENTION_SECONDS)
  return { expired: expired.length, retried }
})

/** A `voice_` room this much older than the longest a start can take, and without a session, is an orphan. */
export const ORPHAN_ROOM_MARGIN_SECONDS = 30
const SESSION_ROOM = /^voice_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/

/** Backoff of a room cleanup after `attempts` failed deletes: 5 s doubling, at most 10 minutes. */
const cleanupDelay = (attempts: number) => Math.min(600, 5 * 2 ** Math.min(attempts, 7))

/** Due room cleanups one pass deletes at most (the rest wait for the next pass). */
const DUE_ROOMS_PER_PASS = 20

/**
 * Deletes the rooms whose cleanup is due, claimed so that one instance does each: failed or
 * uncertain compensations of failed starts, and call caps (the session's metadata then records the
 * deletion, once: a repeat after a crash finds the key already there). A delete that fails is
 * retried with backoff.
 */
export const sweepDueRooms = Effect.gen(function* () {
  const cleanups = yield* RoomCleanups
  const livekit = yield* LiveKit
  const repo = yield* SessionsRepo
  const recordCapped = (room: string, sessionId: string) =>
    Effect.gen(function* () {
      const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      yield* repo.addMetadata({ id: sessionId, metadata: roomDeleted(now) })
      yield* Effect.logInfo(`call cap reached: deleted LiveKit room ${room} of session ${sessionId}`)
    })
  const remove = ({ room, attempts, session_id }: DueCleanup) =>
    livekit.deleteRoom(room).pipe(
      Effect.zipRight(session_id === null ? Effect.void : recordCapped(room, session_id)),
      Effect.zipRight(cleanups.done(room)),
      Effect.catchTag("LiveKitError", (e) =>
        cleanups.failed({ room, delaySeconds: cleanupDelay(attempts), error: e.message }),
      ),
    )
  const due = yield* cleanups.claimDue(DUE_ROOMS_PER_PASS)
  yield* Effect.forEach(due, remove, { discard: true })
  return due.length
})

/**
 * Deletes the `voice_` rooms without a session row that are older than a start can take (a room
 * created after its start gave up); a delete that fails is recorded as a cleanup.
 */
export const sweepOrphanRooms = Effect.gen(function* () {
  const cleanups = yield* RoomCleanups
  const livekit = yield* LiveKit
  const repo = yield* SessionsRepo
  const { upstreamTimeoutMs } = yield* AppConfig
  const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
  const settled = now - Math.ceil(upstreamTimeoutMs / 1000) - ORPHAN_ROOM_MARGIN_SECONDS
  const candidates = (yield* livekit.listRooms).flatMap((room) => {
    const id = SESSION_ROOM.exec(room.name)?.[1]
    return id !== undefined && room.createdAt < settled ? [{ room: room.name, id }] : []
  })
  const known = new Set(yield* repo.existing(candidates.map((c) => c.id)))
  const orphans = candidates.filter((c) => !known.has(c.id))
  yield* Effect.forEach(
    orphans,
    ({ room }) =>
      Effect.zipRight(
        Effect.logWarning(`deleting LiveKit room ${room}: it has no session`),
        livekit
          .deleteRoom(room)
          .pipe(
            Effect.catchTag("LiveKitError", (e) =>
              cleanups.record({ room, delaySeconds: cleanupDelay(0), error: e.message }),
            ),
          ),
      ),
    { discard: true },
  )
  return orphans.length
})

/** Deletes the LiveKit rooms no session needs: the due cleanups, then the orphans. */
export const sweepRooms = Effect.gen(function* () {
  const cleanups = yield* sweepDueRooms
  const orphans = yield* sweepOrphanRooms
  return { cleanups, orphans }
})

/** Due room cleanups are looked for this often (an indexed query), or every ROOM_SWEEP_SECONDS if that is sooner. */
const DUE_ROOMS_EVERY_SECONDS = 5

/**
 * Runs the session sweep every SWEEP_EVERY; the due room cleanups (call caps among them) every
 * DUE_ROOMS_EVERY_SECONDS and the orphan room sweep every ROOM_SWEEP_SECONDS (0: neither), for as
 * long as the server is up; a failed pass is logged and retried.
 */
export const SweeperLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const { roomSweepSeconds } = yield* AppConfig
    yield* sweepOnce.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("session sweep failed", cause)),
      Effect.repeat(Schedule.spaced(SWEEP_EVERY)),
      Effect.forkScoped,
    )
    if (roomSweepSeconds > 0) {
      yield* sweepDueRooms.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("room cleanup sweep failed", cause)),
        Effect.repeat(Schedule.spaced(`${Math.min(roomSweepSeconds, DUE_ROOMS_EVERY_SECONDS)} seconds`)),
        Effect.forkScoped,
      )
      yield* sweepOrphanRooms.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("orphan room sweep failed", cause)),
        Effect.repeat(Schedule.spaced(`${roomSweepSeconds} seconds`)),
        Effect.forkScoped,
      )
    }
  }),
).pipe(Layer.provide([SessionsRepo.Live, RoomCleanups.Live]))
