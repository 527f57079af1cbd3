import { Effect, Layer, Option, Schedule } from "effect"
import { AppConfig } from "../Config.ts"
import { Sessions } from "../Sessions.ts"
import { CompletionHub } from "./CompletionHub.ts"
import { SessionsRepo } from "./Repo.ts"

/**
 * A `completing` claim whose lease was not renewed for this long belongs to an instance that died
 * mid-extraction (a running completion renews it every 5 s); with a sweep every SWEEP_EVERY, its
 * work is taken over within ~30 s.
 */
export const COMPLETION_LEASE_SECONDS = 20
const SWEEP_EVERY = "10 seconds"

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
  while (true) {
    const stale = yield* repo.reclaimStale(COMPLETION_LEASE_SECONDS)
    if (Option.isNone(stale)) break
    yield* Effect.logWarning(
      `retrying the completion of session ${stale.value.session_id} after a lost lease`,
    )
    // Detached inside: shutting down stops this wait, not the completion (a lost one is re-swept).
    yield* sessions.finishClaimed(stale.value)
    retried += 1
  }
  yield* repo.pruneEvents(WEBHOOK_EVENT_RETENTION_SECONDS)
  return { expired: expired.length, retried }
})

/** Runs the sweep every SWEEP_EVERY for as long as the server is up; a failed pass is logged and retried. */
export const SweeperLive = Layer.scopedDiscard(
  sweepOnce.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("session sweep failed", cause)),
    Effect.repeat(Schedule.spaced(SWEEP_EVERY)),
    Effect.forkScoped,
  ),
).pipe(Layer.provide(SessionsRepo.Live))
