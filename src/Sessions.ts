import { Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Option, Schedule } from "effect"
import { sessionInstruction } from "./Agents/SystemInstruction.ts"
import { Agents } from "./Agents.ts"
import { AppConfig } from "./Config.ts"
import { nowSeconds, toUnix } from "./Domain/Envelope.ts"
import {
  VoiceAgentNotFound,
  VoiceGeminiEphemeralFailed,
  VoiceLiveKitFailed,
  VoiceResultExtractionFailed,
  VoiceSessionNotActive,
  VoiceSessionNotFound,
  VoiceSessionTtlTooShort,
} from "./Domain/Errors.ts"
import type { AgentId, OrgId, SessionId } from "./Domain/Ids.ts"
import { type CompleteSession, type Session, type StartSession, TERMINAL } from "./Domain/Session.ts"
import { DEFAULT_VOICE } from "./Domain/Voices.ts"
import { Gemini } from "./Gemini.ts"
import { LiveKit } from "./LiveKit.ts"
import { CompletionHub } from "./Sessions/CompletionHub.ts"
import { extract } from "./Sessions/Extraction.ts"
import { type Outcome, type SessionRow, SessionsRepo } from "./Sessions/Repo.ts"

export const DEFAULT_TTL_SECONDS = 600
export const DEFAULT_WAIT_SECONDS = 30

export const toSession = (row: SessionRow): Session => ({
  session_id: row.id as SessionId,
  agent_id: row.agent_id as AgentId,
  status: row.status,
  participant: row.participant,
  context: row.context,
  transcript: row.transcript,
  results: row.results,
  extraction_warnings: row.extraction_warnings,
  duration_seconds: row.duration_seconds,
  max_duration_seconds: row.max_duration_seconds,
  error_log: row.error_log,
  metadata: row.metadata,
  expires_at: toUnix(row.expires_at),
  created_at: toUnix(row.created_at),
  updated_at: toUnix(row.updated_at),
  completed_at: row.completed_at === null ? null : toUnix(row.completed_at),
})

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

/**
 * Runs `self` on a fiber of its own and waits for it. A caller that is interrupted (the client
 * disconnects) only stops waiting: the work runs to its end — no room without a row, no claimed
 * session left `completing` — and, unlike under `Effect.uninterruptible` (whose interruption also
 * reaches every child fiber, and which keeps `Effect.timeout` from interrupting anything), every
 * upstream timeout inside it still fires.
 */
const detached = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.forkDaemon(self), Fiber.join)

const make = Effect.gen(function* () {
  const repo = yield* SessionsRepo
  const agents = yield* Agents
  const livekit = yield* LiveKit
  const gemini = yield* Gemini
  const hub = yield* CompletionHub
  const config = yield* AppConfig

  const start = (orgId: OrgId, input: StartSession) =>
    Effect.gen(function* () {
      const ttl = input.ttl_seconds ?? DEFAULT_TTL_SECONDS
      if (input.max_duration_seconds !== undefined && input.max_duration_seconds > ttl)
        return yield* ttlTooShort(input.max_duration_seconds, ttl)
      const agent = yield* agents.findActive(orgId, input.agent_id).pipe(
        // The field the client sent is `agent_id`, not a path `id`.
        Effect.mapError((e) =>
          e._tag === "VoiceAgentNotFound"
            ? new VoiceAgentNotFound({ message: e.message, param: "agent_id" })
            : e,
        ),
      )
      const cap = input.max_duration_seconds ?? agent.behaviors.max_duration_seconds ?? null
      if (cap !== null && cap > ttl) return yield* ttlTooShort(cap, ttl)

      const id = crypto.randomUUID()
      const room = `voice_${id}`
      const now = yield* Clock.currentTimeMillis
      const createdAt = new Date(now)
      const expiresAt = new Date(now + ttl * 1000)
      const instruction = sessionInstruction(agent.system_instruction, input.participant, input.context)

      const createRoom = livekit
        .createRoom({
          name: room,
          emptyTimeoutSeconds: ttl,
          maxParticipants: 4,
          metadata: JSON.stringify({ session_id: id, agent_id: agent.id, org_id: orgId }),
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
          languageCode: input.voice?.language_code ?? agent.voice?.language_code ?? agent.language,
          ttlSeconds: ttl,
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
      const undoRoom = livekit
        .deleteRoom(room)
        .pipe(
          Effect.catchAll((e) => Effect.logWarning(`could not delete room ${room} after a failed start`, e)),
        )
      if (roomResult._tag === "Left") return yield* roomResult.left
      return yield* Effect.gen(function* () {
        if (token._tag === "Left") return yield* token.left
        const jwt = yield* livekit.participantToken({
          room,
          identity: input.participant.identity,
          name: input.participant.name,
          ttlSeconds: ttl,
        })
        const row = yield* repo.insert({
          id,
          orgId,
          agentId: agent.id,
          participant: input.participant,
          context: input.context ?? null,
          systemInstruction: instruction,
          maxDurationSeconds: cap,
          createdAt,
          expiresAt,
        })
        return {
          session_id: row.id as SessionId,
          agent_id: row.agent_id as AgentId,
          connection: {
            livekit: { url: livekit.clientUrl, token: jwt },
            gemini_live: { url: token.right.url, token: token.right.token },
          },
          system_instruction: instruction,
          expires_at: toUnix(row.expires_at),
          max_duration_seconds: cap,
        }
      }).pipe(Effect.onError(() => undoRoom))
    }).pipe(detached)

  const get = (orgId: OrgId, id: SessionId) =>
    Effect.flatMap(repo.find(orgId, id), (row) =>
      Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(notFound(id)),
    )

  /**
   * Long-poll: subscribe first, then re-read, so a completion between the two is never missed.
   * Each wake-up re-reads the row; nothing polls the database. Interrupting (client disconnect)
   * releases the subscription.
   */
  const waitForTerminal = (orgId: OrgId, id: SessionId, timeoutSeconds: number) =>
    Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + timeoutSeconds * 1000
      while (true) {
        const woke = yield* Effect.scoped(
          Effect.gen(function* () {
            const signal = yield* hub.subscribe(id)
            const row = yield* get(orgId, id)
            if (TERMINAL.has(row.status)) return Option.some(row)
            const left = deadline - (yield* Clock.currentTimeMillis)
            if (left <= 0) return Option.some(row)
            const fired = yield* Deferred.await(signal).pipe(
              Effect.timeout(Duration.millis(left)),
              Effect.option,
            )
            // A change means re-read and maybe wait again; a timeout or shutdown answers with the state now.
            return Option.isSome(fired) && fired.value === "changed"
              ? Option.none()
              : Option.some(yield* get(orgId, id))
          }),
        )
        if (Option.isSome(woke)) return woke.value
      }
    })

  const read = (orgId: OrgId, id: SessionId, wait: boolean, timeoutSeconds: number) =>
    Effect.map(wait ? waitForTerminal(orgId, id, timeoutSeconds) : get(orgId, id), toSession)

  /** Runs extraction for a claimed row and records the outcome; waiters everywhere are woken. */
  const finishClaimed = (row: SessionRow) =>
    detached(
      Effect.gen(function* () {
        const transcript = row.transcript ?? []
        const agent = yield* agents
          .row(row.org_id, row.agent_id)
          .pipe(Effect.catchTag("VoiceAgentNotFound", Effect.die))
        const outcome: Outcome = yield* extract(agent, transcript).pipe(
          Effect.provideService(Gemini, gemini),
          Effect.provideService(AppConfig, config),
          Effect.map(
            (x): Outcome => ({ status: "completed", results: x.results, warnings: x.warnings, errors: [] }),
          ),
          // Stamped when the extraction gave up, which can be up to its whole retry budget later.
          Effect.catchTag("GeminiExtractionError", (e) =>
            failed("voice_result_extraction_failed", e.message),
          ),
        )
        const claimedAt = row.claimed_at ?? new Date(0)
        const finished = yield* repo.finish(row.id, claimedAt, outcome).pipe(
          // A database blip must not strand the transcript in `completing` while the client retries.
          Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 5 }),
          // An outcome that cannot be stored (a bug) still ends the session, as failed.
          Effect.catchAllDefect((defect) =>
            Effect.zipRight(
              Effect.logError("could not store an extraction outcome", defect),
              Effect.flatMap(failed("internal_error", "the result could not be stored"), (outcome) =>
                repo.finish(row.id, claimedAt, outcome),
              ),
            ),
          ),
        )
        yield* hub.publish(row.id)
        return Option.getOrElse(finished, () => row)
      }),
    )

  const complete = (orgId: OrgId, id: SessionId, input: CompleteSession) =>
    Effect.gen(function* () {
      const claimed = yield* repo.claim(
        orgId,
        id,
        input.transcript,
        input.duration_seconds ?? null,
        config.sessionCompletionGraceSeconds,
      )
      if (Option.isNone(claimed)) {
        const row = yield* get(orgId, id)
        return yield* new VoiceSessionNotActive({
          message:
            row.status === "active"
              ? `Voice session ${id} has expired; it can no longer be completed.`
              : `Voice session ${id} is ${row.status}; only an active session can be completed.`,
        })
      }
      // The transcript is stored; the outcome is recorded even if the caller has gone away.
      const finished = yield* finishClaimed(claimed.value)
      // Not terminal only when another instance took the claim over: answer with its outcome.
      const row = TERMINAL.has(finished.status) ? finished : yield* waitForTerminal(orgId, id, 60)
      if (row.status === "failed")
        return yield* new VoiceResultExtractionFailed({
          message: `Result extraction failed: ${row.error_log.at(-1)?.message ?? "upstream error"}. The transcript is kept.`,
        })
      return toSession(row)
    }).pipe(detached)

  return { start, read, complete, finishClaimed }
})

export class Sessions extends Context.Tag("Parley/Sessions")<Sessions, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(Sessions, make).pipe(Layer.provide(SessionsRepo.Live))
}
