import { Clock, Context, Deferred, Effect, Exit, Layer, Option, Runtime } from "effect"
import { sessionInstruction } from "./Agents/SystemInstruction.ts"
import { Agents } from "./Agents.ts"
import { AppConfig } from "./Config.ts"
import { languageTag } from "./Domain/Agent.ts"
import { nowSeconds } from "./Domain/Envelope.ts"
import {
  VoiceGeminiEphemeralFailed,
  VoiceLiveKitFailed,
  VoiceResultExtractionFailed,
  VoiceSessionNotActive,
  VoiceSessionNotFound,
  VoiceSessionTtlTooShort,
} from "./Domain/Errors.ts"
import type { OrgId, SessionId } from "./Domain/Ids.ts"
import { type CompleteSession, type StartSession, TERMINAL, type TranscriptEntry } from "./Domain/Session.ts"
import { DEFAULT_VOICE } from "./Domain/Voices.ts"
import { Gemini, takesLanguageCode } from "./Gemini.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { LiveKit } from "./LiveKit.ts"
import { UNTIL_STORED } from "./Repository.ts"
import { callCapPlan } from "./Sessions/CallCap.ts"
import { CompletionHub, each, type Round, type Woken } from "./Sessions/CompletionHub.ts"
import { extract } from "./Sessions/Extraction.ts"
import { listSessions } from "./Sessions/Listing.ts"
import { type Outcome, SessionsRepo, type StoredSession } from "./Sessions/Repo.ts"
import { RoomCleanups } from "./Sessions/RoomCleanups.ts"
import { Transaction } from "./Transaction.ts"

export const DEFAULT_TTL_SECONDS = 600

/** How often a running completion renews its lease (COMPLETION_LEASE_SECONDS, in the sweeper). */
const LEASE_HEARTBEAT = "5 seconds"

/** The same transcript as the one stored (jsonb does not keep key order, so entries are compared). */
const sameTranscript = (stored: ReadonlyArray<TranscriptEntry>, sent: ReadonlyArray<TranscriptEntry>) =>
  stored.length === sent.length &&
  stored.every(
    (e, i) => e.role === sent[i].role && e.text === sent[i].text && e.timestamp === sent[i].timestamp,
  )
export const DEFAULT_WAIT_SECONDS = 30

const ttlTooShort = (cap: number, ttl: number) =>
  new VoiceSessionTtlTooShort({
    message: `ttl_seconds (${ttl}) must be at least the call cap max_duration_seconds (${cap}).`,
    param: "ttl_seconds",
  })

/** A failed outcome with one error-log entry stamped now. */
const failed = (code: string, message: string) =>
  Effect.map(
    nowSeconds,
    (at): Outcome => ({ status: "failed", results: null, warnings: [], errors: [{ at, code, message }] }),
  )

const notFound = (id: string) =>
  new VoiceSessionNotFound({ message: `No voice session with id ${id}.`, param: "id" })

/** A read shared by waiters: its outcome once known, and who waits for it meanwhile. */
interface SharedRead<A, E> {
  exit: Exit.Exit<A, E> | undefined
  readonly callbacks: Array<(exit: Exit.Exit<A, E>) => void>
  /** When it started (Effect clock, ms). */
  readonly at: number
}

const always = () => true
const never = () => false

/**
 * The waiters of a long-poll, in one place: what a waiting request holds (no fiber of its own) and
 * the one read that waiters woken together share.
 */
export type Watched<A> =
  | { readonly _tag: "Done"; readonly row: A }
  /** `answer` will be called once, unless `cancel` (the client went away) is called first. */
  | { readonly _tag: "Waiting"; readonly cancel: () => void }

const make = Effect.gen(function* () {
  const repo = yield* SessionsRepo
  const cleanups = yield* RoomCleanups
  const agents = yield* Agents
  const livekit = yield* LiveKit
  const gemini = yield* Gemini
  const hub = yield* CompletionHub
  const config = yield* AppConfig
  const { atomically } = yield* Transaction
  // Start and complete run to their end even if the client goes away (see Lifecycle.detached).
  const { detached } = yield* Lifecycle
  // Waiters are woken by callbacks, outside any fiber: their shared re-reads run on this layer's runtime.
  const runtime = yield* Effect.runtime<never>()
  const runFork = Runtime.runFork(runtime)

  const start = (orgId: OrgId, input: StartSession) =>
    Effect.gen(function* () {
      const ttl = input.ttl_seconds ?? DEFAULT_TTL_SECONDS
      if (input.max_duration_seconds !== undefined && input.max_duration_seconds > ttl)
        return yield* ttlTooShort(input.max_duration_seconds, ttl)
      const agent = yield* agents.findActive(orgId, input.agent_id)
      const cap = input.max_duration_seconds ?? agent.behaviors.max_duration_seconds ?? null
      if (cap !== null && cap > ttl) return yield* ttlTooShort(cap, ttl)

      const id = crypto.randomUUID()
      const room = `voice_${id}`
      const now = yield* Clock.currentTimeMillis
      const createdAt = new Date(now)
      const expiresAt = new Date(now + ttl * 1000)
      const callCap = callCapPlan(cap, agent.behaviors, createdAt, config.callCapGraceSeconds)
      // A free-text `language` ("English") is only for the instruction; a speech config takes a tag,
      // and native-audio models take none: then the voice's language code is spoken as a rule.
      const voiceLanguage = languageTag(input.voice?.language_code ?? agent.voice?.language_code ?? "")
      const codeTaken = takesLanguageCode(config.geminiLiveModel)
      const instruction = sessionInstruction(
        agent.system_instruction,
        input.participant,
        input.context,
        codeTaken ? undefined : voiceLanguage,
      )

      const createRoom = livekit
        .createRoom({
          name: room,
          emptyTimeoutSeconds: ttl,
          maxParticipants: 4,
          metadata: JSON.stringify({ session_id: id, agent_id: agent.agent_id, org_id: orgId }),
        })
        .pipe(
          Effect.mapError(
            (e) => new VoiceLiveKitFailed({ message: `LiveKit room creation failed: ${e.message}` }),
          ),
        )
      const mintToken = gemini
        .mintLiveToken({
          systemInstruction: instruction,
          voiceName: input.voice?.name ?? agent.voice?.name ?? DEFAULT_VOICE,
          languageCode: codeTaken ? (voiceLanguage ?? languageTag(agent.language)) : undefined,
          ttlSeconds: ttl,
          callCapSeconds: callCap?.windowSeconds,
        })
        .pipe(
          Effect.mapError(
            (e) =>
              new VoiceGeminiEphemeralFailed({
                message: `Minting the Gemini Live token failed: ${e.message}`,
              }),
          ),
        )

      // Both upstreams at once; the room is deleted again if anything after its creation fails.
      const [roomResult, token] = yield* Effect.all([Effect.either(createRoom), Effect.either(mintToken)], {
        concurrency: 2,
      })
      // A compensation that fails, or whose room may still be created at LiveKit after the start
      // gave up on it, is recorded for the sweeper (and a room it misses has no row: the sweeper's
      // orphan scan deletes it).
      const remember = (delaySeconds: number, error: string | null) =>
        cleanups
          .record({ room, delaySeconds, error })
          .pipe(Effect.catchAll((e) => Effect.logWarning(`could not record room ${room} for cleanup`, e)))
      const undoRoom = livekit
        .deleteRoom(room)
        .pipe(
          Effect.catchAll((e) =>
            Effect.zipRight(
              Effect.logWarning(`could not delete room ${room} after a failed start; the sweeper will`, e),
              remember(5, e.message),
            ),
          ),
        )
      if (roomResult._tag === "Left") {
        yield* remember(Math.ceil(config.upstreamTimeoutMs / 1000) + 5, roomResult.left.message)
        return yield* roomResult.left
      }
      return yield* Effect.gen(function* () {
        if (token._tag === "Left") return yield* token.left
        const jwt = yield* livekit.participantToken({
          room,
          identity: input.participant.identity,
          name: input.participant.name,
          // LiveKit creates a room anew when someone joins a deleted one: past the cap, no one can.
          ttlSeconds: callCap ? Math.min(ttl, callCap.windowSeconds) : ttl,
        })
        const insert = repo.insert({
          id,
          org_id: orgId,
          agent_id: agent.agent_id,
          participant: input.participant,
          context: input.context ?? null,
          system_instruction: instruction,
          max_duration_seconds: cap,
          created_at: createdAt,
          expires_at: expiresAt,
          ...(callCap ? { metadata: callCap.metadata } : {}),
        })
        // The cap's room deletion is scheduled with the row: a session never lacks its schedule.
        const session = yield* callCap
          ? atomically(
              Effect.zipLeft(insert, cleanups.schedule({ room, sessionId: id, dueAt: callCap.dueAt })),
            )
          : insert
        return {
          session_id: session.session_id,
          agent_id: session.agent_id,
          connection: {
            livekit: { url: livekit.clientUrl, token: jwt },
            gemini_live: { url: token.right.url, token: token.right.token },
          },
          system_instruction: instruction,
          expires_at: session.expires_at,
          max_duration_seconds: cap,
        }
      }).pipe(Effect.onError(() => undoRoom))
    }).pipe(detached)

  const get = (orgId: OrgId, id: SessionId) =>
    Effect.flatMap(repo.find({ orgId, id }), (row) =>
      Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(notFound(id)),
    )

  type Session = Effect.Effect.Success<ReturnType<typeof get>>
  type ReadError = Effect.Effect.Error<ReturnType<typeof get>>
  type Reads = Map<string, SharedRead<Session, ReadError>>
  type Answer = (exit: Exit.Exit<Session, ReadError>) => void

  /**
   * A read shared by waiters: the first caller for a key starts it, the others are called back with
   * its outcome. It runs to its end whoever goes away, since the others depend on it. `forget`: whether
   * the key is free again once the read is done with this outcome (else later callers get it too, for
   * as long as the map's owner keeps the map).
   */
  const shared = (
    reads: Reads,
    key: string,
    forget: (exit: Exit.Exit<Session, ReadError>) => boolean,
    read: Effect.Effect<Session, ReadError>,
    then: Answer,
    now = 0,
  ) => {
    const known = reads.get(key)
    if (known?.exit !== undefined) return then(known.exit)
    if (known !== undefined) return void known.callbacks.push(then)
    const pending: SharedRead<Session, ReadError> = { exit: undefined, callbacks: [then], at: now }
    reads.set(key, pending)
    runFork(read).addObserver((exit) => {
      pending.exit = exit
      if (forget(exit)) reads.delete(key)
      for (const callback of pending.callbacks.splice(0)) each(() => callback(exit))
    })
  }
  /** Per ended round, per organization: the one re-read its woken waiters share (started after it ended). */
  const roundReads = new WeakMap<Round, Reads>()
  const reread = (round: Round, orgId: OrgId, id: SessionId, then: Answer) => {
    const reads: Reads = roundReads.get(round) ?? new Map()
    roundReads.set(round, reads)
    shared(reads, orgId, never, get(orgId, id), then)
  }
  /**
   * Per round, per organization: the first read of waiters registered in that round. A read started in
   * the round a waiter registered in is as good as one of its own: whatever changes after that read's
   * snapshot ends the round (its wake-up), and so wakes the waiter. So it is joined while in flight,
   * and once it has succeeded it stands for the round's later waiters (a herd of waiters on one
   * session reads it once) while this instance hears every change (its LISTEN is active), for as long
   * as a cached key or agent is served (CACHE_TTL_MS): only a change whose notification never arrives
   * (NOTIFY given up, a connection that has not noticed it is broken) would leave a later waiter on an
   * older row, and for no longer than that. A failure is not kept (its next waiter reads again).
   */
  const firstReads = new WeakMap<Round, Reads>()
  const firstRead = (round: Round, orgId: OrgId, id: SessionId) =>
    Effect.flatMap(Effect.zip(hub.listening, Clock.currentTimeMillis), ([hearsAll, now]) =>
      Effect.async<Session, ReadError>((resume) => {
        const reads: Reads = firstReads.get(round) ?? new Map()
        firstReads.set(round, reads)
        const known = reads.get(orgId)
        if (known?.exit !== undefined && (!hearsAll || now - known.at >= config.cacheTtlMs))
          reads.delete(orgId)
        shared(reads, orgId, hearsAll ? Exit.isFailure : always, get(orgId, id), resume, now)
      }),
    )
  /** Reads of waiters whose deadline passed, joined while in flight (many may share one deadline). */
  const finalReads: Reads = new Map()

  /**
   * Long-poll: register first, then read, so a completion between the two is never missed. When the
   * session is not terminal yet, the wait holds no fiber, scope or row of its own — a callback in the
   * hub and an entry in its deadline list — and nothing touches the database; when the session
   * changes, its waiters share one re-read. `answer` gets the terminal row, the row at the deadline,
   * the row after shutdown's wake-up, or the failure of a read. A request can thus wait without its
   * fiber (the HTTP layer answers it from `answer`).
   */
  const watch = (orgId: OrgId, id: SessionId, timeoutSeconds: number, answer: Answer) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const deadline = (yield* Clock.currentTimeMillis) + timeoutSeconds * 1000
        const waiter = yield* hub.register(id)
        const first = yield* Effect.exit(restore(firstRead(waiter.registeredIn, orgId, id)))
        if (Exit.isFailure(first) || TERMINAL.has(first.value.status)) {
          waiter.release()
          return yield* Effect.map(first, (row): Watched<Session> => ({ _tag: "Done", row }))
        }
        const state = { done: false, stopListening: () => {} }
        const stop = () => {
          if (state.done) return false
          state.done = true
          state.stopListening()
          waiter.release()
          return true
        }
        const finish: Answer = (exit) => {
          if (stop()) answer(exit)
        }
        const settle: Answer = (exit) =>
          Exit.isSuccess(exit) && !TERMINAL.has(exit.value.status) ? listen() : finish(exit)
        // A timeout answers with the state now; shutdown with the state after its wake-up.
        const onWake = ({ why, round }: Woken) =>
          why === "timeout"
            ? shared(finalReads, `${orgId}/${id}`, always, get(orgId, id), finish)
            : reread(round, orgId, id, why === "closing" ? finish : settle)
        const listen = () => {
          if (state.done) return
          const listening = Runtime.runSync(runtime)(waiter.listen(deadline, onWake))
          if (typeof listening === "function") state.stopListening = listening
          else onWake(listening)
        }
        listen()
        return { _tag: "Waiting", cancel: () => void stop() } satisfies Watched<Session>
      }),
    )

  /** A long-poll on the caller's fiber (an interruption, the client going away, ends the wait). */
  const waitForTerminal = (orgId: OrgId, id: SessionId, timeoutSeconds: number) =>
    Effect.suspend(() => {
      const outcome: { exit?: Exit.Exit<Session, ReadError>; resume?: Answer } = {}
      const answer: Answer = (exit) => {
        if (outcome.resume === undefined) outcome.exit = exit
        else outcome.resume(exit)
      }
      // from the wait's start to its cancel being installed, an interruption must wait its turn
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(watch(orgId, id, timeoutSeconds, answer)), (watched) =>
          watched._tag === "Done"
            ? Effect.succeed(watched.row)
            : restore(
                Effect.async<Session, ReadError>((resume) => {
                  if (outcome.exit !== undefined) return resume(outcome.exit)
                  outcome.resume = resume
                  return Effect.sync(watched.cancel)
                }),
              ).pipe(Effect.onInterrupt(() => Effect.sync(watched.cancel))),
        ),
      )
    })

  const read = (orgId: OrgId, id: SessionId, wait: boolean, timeoutSeconds: number) =>
    wait ? waitForTerminal(orgId, id, timeoutSeconds) : get(orgId, id)

  /**
   * Runs extraction for a claimed session and records the outcome; waiters everywhere are woken.
   * While it runs, the claim's lease is renewed (a crashed instance's claim goes stale within
   * COMPLETION_LEASE_SECONDS and is taken over); an outcome already computed is stored however long
   * the database takes to come back, so the model is never asked twice for it. None when the claim
   * was taken over meanwhile (its new owner records the outcome).
   */
  const finishClaimed = (row: StoredSession) =>
    detached(
      Effect.scoped(
        Effect.gen(function* () {
          const claim = { id: row.session_id, claimed_at: row.claimed_at ?? new Date(0) }
          // The heartbeat (the claim itself was the first beat). A beat that finds the claim taken
          // over (its lease ran out, e.g. during a database outage) stops this work: the new owner
          // does it, and the model is not kept busy twice.
          const lost = yield* Deferred.make<void>()
          yield* repo.renewLease(claim).pipe(
            Effect.flatMap((renewed) =>
              Option.isNone(renewed) ? Deferred.succeed(lost, undefined) : Effect.void,
            ),
            Effect.catchAll(() => Effect.void), // a missed beat only shortens the lease
            Effect.delay(LEASE_HEARTBEAT),
            Effect.forever,
            Effect.forkScoped,
          )
          const work = Effect.gen(function* () {
            const transcript = row.transcript ?? []
            const agent = yield* agents
              .get(row.org_id, row.agent_id)
              .pipe(
                Effect.catchTag("VoiceAgentNotFound", Effect.die),
                Effect.retry({ schedule: UNTIL_STORED, while: (e) => e._tag === "ServiceUnavailable" }),
              )
            const outcome: Outcome = yield* extract(agent, transcript).pipe(
              Effect.provideService(Gemini, gemini),
              Effect.provideService(AppConfig, config),
              Effect.map(
                (x): Outcome => ({
                  status: "completed",
                  results: x.results,
                  warnings: x.warnings,
                  errors: [],
                }),
              ),
              // Stamped when the extraction gave up, which can be up to its whole retry budget later.
              Effect.catchTag("GeminiExtractionError", (e) =>
                failed("voice_result_extraction_failed", e.message),
              ),
            )
            const finish = (outcome: Outcome) => repo.finish({ ...outcome, ...claim })
            const finished = yield* finish(outcome).pipe(
              // The transcript is stored and the outcome computed: keep it until the database takes it.
              Effect.retry({ schedule: UNTIL_STORED, while: (e) => e._tag === "ServiceUnavailable" }),
              // An outcome that cannot be stored (a bug) still ends the session, as failed.
              Effect.catchAllDefect((defect) =>
                Effect.zipRight(
                  Effect.logError("could not store an extraction outcome", defect),
                  Effect.flatMap(failed("internal_error", "the result could not be stored"), finish),
                ),
              ),
            )
            return finished
          })
          const finished = yield* Effect.raceFirst(work, Effect.as(Deferred.await(lost), Option.none()))
          // Also after a lost claim: a store that committed just before it was noticed must still be
          // announced (an extra wake-up only costs a re-read).
          yield* hub.publish(row.session_id)
          return finished
        }),
      ),
    )

  /** The answer to a complete once its session has an outcome (a failed one is a 502, the transcript kept). */
  const completed = (row: Session) =>
    row.status === "failed"
      ? Effect.fail(
          new VoiceResultExtractionFailed({
            message:
              "Result extraction failed; the transcript is kept and the cause is in the session's error_log.",
          }),
        )
      : Effect.succeed(row)

  const complete = (orgId: OrgId, id: SessionId, input: CompleteSession) =>
    Effect.gen(function* () {
      // The claim and the work it starts run to their end even if the caller goes away: the
      // transcript, once claimed, always gets its outcome recorded. (Undefined: not claimed.)
      const finished = yield* detached(
        Effect.flatMap(
          repo.claim({
            orgId,
            id,
            transcript: input.transcript,
            duration_seconds: input.duration_seconds ?? null,
            graceSeconds: config.sessionCompletionGraceSeconds,
          }),
          (claimed) => (Option.isNone(claimed) ? Effect.succeed(undefined) : finishClaimed(claimed.value)),
        ),
      )
      // Another instance took the claim over: answer with its outcome.
      if (finished !== undefined)
        return yield* completed(
          Option.isSome(finished) ? finished.value : yield* waitForTerminal(orgId, id, 120),
        )
      const row = yield* get(orgId, id)
      // A retry of a complete that took its transcript (its answer was lost, or it timed out): the
      // outcome of that complete, once there is one, however the first attempt ended. (Waiting like a
      // long-poll: a caller that leaves releases its registration.)
      if (
        row.status !== "active" &&
        row.transcript !== null &&
        sameTranscript(row.transcript, input.transcript)
      )
        return yield* completed(TERMINAL.has(row.status) ? row : yield* waitForTerminal(orgId, id, 120))
      return yield* new VoiceSessionNotActive({
        message:
          row.status === "active"
            ? `Voice session ${id} has expired; it can no longer be completed.`
            : `Voice session ${id} is ${row.status} with another transcript; only an active session can be completed.`,
      })
    })

  return { start, read, watch, complete, finishClaimed, list: listSessions(repo) }
})

export class Sessions extends Context.Tag("Parley/Sessions")<Sessions, Effect.Effect.Success<typeof make>>() {
  /** Over whichever SessionsRepo is provided (unit tests that watch the repository). */
  static readonly layer = Layer.effect(Sessions, make)
  static readonly Live = Sessions.layer.pipe(
    Layer.provide([SessionsRepo.Live, RoomCleanups.Live, Transaction.Live]),
  )
  /** Over the in-memory repository, for unit tests. */
  static readonly Test = Sessions.layer.pipe(
    Layer.provide([SessionsRepo.Test, RoomCleanups.Test, Transaction.Test]),
  )
}
