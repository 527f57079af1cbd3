import { Context, Data, Effect, Layer, Redacted } from "effect"
import { AccessToken, RoomServiceClient, TwirpError, WebhookReceiver } from "livekit-server-sdk"

export class LiveKitError extends Data.TaggedError("LiveKitError")<{
  readonly message: string
  readonly status?: number | undefined
}> {}

export class WebhookVerificationError extends Data.TaggedError("WebhookVerificationError")<{
  readonly message: string
}> {}

export interface LiveKitWebhookEvent {
  readonly id: string
  readonly event: string
  /** Unix seconds. */
  readonly createdAt: number
  readonly room?: { readonly name: string; readonly sid: string } | undefined
  readonly participant?:
    | { readonly identity: string; readonly sid: string; readonly name?: string | undefined }
    | undefined
}

export interface RoomSpec {
  readonly name: string
  readonly emptyTimeoutSeconds: number
  readonly maxParticipants: number
  readonly metadata: string
}

export interface ParticipantGrant {
  readonly room: string
  readonly identity: string
  readonly name?: string | undefined
  readonly ttlSeconds: number
}

export interface LiveKitService {
  /** ws(s):// URL handed to clients. */
  readonly clientUrl: string
  readonly createRoom: (spec: RoomSpec) => Effect.Effect<void, LiveKitError>
  /** Deleting a room that does not exist succeeds: the desired end state already holds. */
  readonly deleteRoom: (name: string) => Effect.Effect<void, LiveKitError>
  /** Every room, with its creation time (Unix seconds). */
  readonly listRooms: Effect.Effect<
    ReadonlyArray<{ readonly name: string; readonly createdAt: number }>,
    LiveKitError
  >
  /** A participant JWT signed locally: join, publish, subscribe and publish data in that room only. */
  readonly participantToken: (grant: ParticipantGrant) => Effect.Effect<string>
  readonly verifyWebhook: (
    body: string,
    authorization: string | undefined,
  ) => Effect.Effect<LiveKitWebhookEvent, WebhookVerificationError>
}

export interface LiveKitSettings {
  /** ws(s):// or http(s):// */
  readonly url: string
  readonly apiKey: string
  readonly apiSecret: Redacted.Redacted<string>
  readonly webhookApiKey?: string | undefined
  readonly webhookApiSecret?: Redacted.Redacted<string> | undefined
  readonly timeoutMs: number
}

const withScheme = (url: string, secure: string, plain: string) =>
  url.replace(/^(wss|https):\/\//i, `${secure}://`).replace(/^(ws|http):\/\//i, `${plain}://`)

export const toClientUrl = (url: string) => withScheme(url, "wss", "ws")
export const toApiUrl = (url: string) => withScheme(url, "https", "http")

const describe = (operation: string, cause: unknown): LiveKitError => {
  if (cause instanceof TwirpError) {
    const code = cause.code ? `, ${cause.code}` : ""
    return new LiveKitError({
      message: `LiveKit ${operation} failed (HTTP ${cause.status}${code})`,
      status: cause.status,
    })
  }
  const reason = cause instanceof Error ? cause.message.slice(0, 200) : "unknown error"
  return new LiveKitError({ message: `LiveKit ${operation} failed: ${reason}` })
}

const make = (settings: LiveKitSettings): LiveKitService => {
  const apiSecret = Redacted.value(settings.apiSecret)
  const rooms = new RoomServiceClient(toApiUrl(settings.url), settings.apiKey, apiSecret, {
    // The SDK's own abort bounds the orphaned fetch once Effect.timeout has already given up on it.
    requestTimeout: Math.max(1, Math.ceil(settings.timeoutMs / 1000)),
    failover: false,
  })
  const receiver = new WebhookReceiver(
    settings.webhookApiKey ?? settings.apiKey,
    settings.webhookApiSecret ? Redacted.value(settings.webhookApiSecret) : apiSecret,
  )

  const call = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => describe(operation, cause) }).pipe(
      Effect.timeoutFail({
        duration: settings.timeoutMs,
        onTimeout: () =>
          new LiveKitError({ message: `LiveKit ${operation} timed out after ${settings.timeoutMs} ms` }),
      }),
    )

  const deleteRoom = (name: string) =>
    call("DeleteRoom", () => rooms.deleteRoom(name)).pipe(
      Effect.catchIf(
        (error) => error.status === 404,
        () => Effect.void,
      ),
    )

  const createRoom = (spec: RoomSpec) =>
    Effect.suspend(() => {
      let request: Promise<unknown> | undefined
      // A request given up on may still have created the room on the server (even when the SDK's
      // own abort rejected it), so once it has settled the room is deleted, whatever its outcome:
      // a failed createRoom leaves no room behind. Deleting a room that does not exist is a no-op.
      const deleteIfCreatedLate = Effect.suspend(() =>
        request === undefined
          ? Effect.void
          : Effect.promise(() => (request as Promise<unknown>).catch(() => undefined)).pipe(
              Effect.zipRight(deleteRoom(spec.name)),
              Effect.ignore,
              Effect.forkDaemon,
            ),
      )
      return call("CreateRoom", () => {
        request = rooms.createRoom({
          name: spec.name,
          emptyTimeout: spec.emptyTimeoutSeconds,
          maxParticipants: spec.maxParticipants,
          metadata: spec.metadata,
        })
        return request
      }).pipe(
        Effect.asVoid,
        Effect.tapError(() => deleteIfCreatedLate),
      )
    })

  return {
    clientUrl: toClientUrl(settings.url),
    createRoom,
    deleteRoom,
    listRooms: Effect.map(
      call("ListRooms", () => rooms.listRooms()),
      (list) => list.map((room) => ({ name: room.name, createdAt: Number(room.creationTime) })),
    ),
    participantToken: (grant) =>
      Effect.promise(() => {
        const token = new AccessToken(settings.apiKey, apiSecret, {
          identity: grant.identity,
          name: grant.name,
          ttl: grant.ttlSeconds,
        })
        token.addGrant({
          room: grant.room,
          roomJoin: true,
          canPublish: true,
          canSubscribe: true,
          canPublishData: true,
        })
        return token.toJwt()
      }),
    verifyWebhook: (body, authorization) =>
      Effect.tryPromise({
        try: () => receiver.receive(body, authorization),
        catch: (cause) =>
          new WebhookVerificationError({
            message: `LiveKit webhook verification failed: ${cause instanceof Error ? cause.message.slice(0, 200) : "unknown error"}`,
          }),
      }).pipe(
        Effect.map(
          (event): LiveKitWebhookEvent => ({
            id: event.id,
            event: event.event,
            createdAt: Number(event.createdAt),
            room: event.room ? { name: event.room.name, sid: event.room.sid } : undefined,
            participant: event.participant
              ? {
                  identity: event.participant.identity,
                  sid: event.participant.sid,
                  name: event.participant.name || undefined,
                }
              : undefined,
          }),
        ),
      ),
  }
}

export class LiveKit extends Context.Tag("Parley/LiveKit")<LiveKit, LiveKitService>() {
  static readonly make = make
  static readonly layer = (settings: LiveKitSettings) => Layer.succeed(LiveKit, make(settings))
}
