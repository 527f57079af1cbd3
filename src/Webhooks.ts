import { Context, Effect, Layer } from "effect"
import type { LiveKitWebhookEvent } from "./LiveKit.ts"
import { SessionsRepo } from "./Sessions/Repo.ts"

const ROOM = /^voice_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i

type Metadata = Readonly<Record<string, unknown>>

/** How each handled event changes the session's metadata. It never completes the session. */
const patches: Record<string, (e: LiveKitWebhookEvent) => (m: Metadata) => Metadata> = {
  room_finished: (e) => (m) => ({
    ...m,
    livekit_room_sid: e.room?.sid ?? m.livekit_room_sid ?? null,
    livekit_room_finished_at: e.createdAt,
  }),
  participant_joined: (e) => (m) => ({
    ...m,
    livekit_room_sid: e.room?.sid ?? m.livekit_room_sid ?? null,
    // the earliest join, whatever order LiveKit's deliveries arrive in
    livekit_call_started_at:
      typeof m.livekit_call_started_at === "number"
        ? Math.min(m.livekit_call_started_at, e.createdAt)
        : e.createdAt,
    livekit_last_participant_joined_at: e.createdAt,
    livekit_last_participant_identity: e.participant?.identity ?? null,
  }),
  participant_left: (e) => (m) => ({
    ...m,
    livekit_last_participant_left_at: e.createdAt,
    livekit_last_participant_identity: e.participant?.identity ?? null,
  }),
}

const make = Effect.gen(function* () {
  const repo = yield* SessionsRepo
  return {
    /** Records a verified event; `false` when it is not ours, not tracked, or a redelivery. */
    handle: (event: LiveKitWebhookEvent) =>
      Effect.gen(function* () {
        const sessionId = ROOM.exec(event.room?.name ?? "")?.[1]
        const patch = patches[event.event]
        if (sessionId === undefined || patch === undefined || event.id === "") return false
        const outcome = yield* repo.recordEvent(
          { event_id: event.id, event: event.event },
          sessionId,
          patch(event),
        )
        return outcome === "recorded"
      }),
  }
})

export class Webhooks extends Context.Tag("Parley/Webhooks")<Webhooks, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(Webhooks, make).pipe(Layer.provide(SessionsRepo.Live))
  /** Over the in-memory repository, for unit tests. */
  static readonly Test = Layer.effect(Webhooks, make).pipe(Layer.provide(SessionsRepo.Test))
}
