/**
 * A loopback stand-in for a LiveKit server: the Twirp JSON room service the SDK's RoomServiceClient
 * calls, plus webhooks signed the way LiveKit signs them. Used by `npm start` without credentials
 * and by tests (rooms are inspectable, faults injectable).
 */
import { createHash, randomBytes } from "node:crypto"
import { Effect } from "effect"
import {
  AccessToken,
  type ClaimGrants,
  ParticipantInfo,
  Room,
  TokenVerifier,
  WebhookEvent,
  type WebhookEventNames,
} from "livekit-server-sdk"
import { faultQueue, type Hold } from "./Faults.ts"

export type RoomServiceMethod = "CreateRoom" | "DeleteRoom" | "ListRooms" | "ListParticipants"

export interface LocalParticipant {
  readonly sid: string
  readonly identity: string
  readonly name: string
}

export interface LocalRoom {
  readonly sid: string
  readonly name: string
  readonly emptyTimeout: number
  readonly maxParticipants: number
  readonly metadata: string
  /** Unix seconds. */
  readonly creationTime: number
  readonly participants: ReadonlyArray<LocalParticipant>
}

export interface LiveKitFault {
  /** Every method when unset. */
  readonly method?: RoomServiceMethod | undefined
  /** Answer with this status (a Twirp error body unless `body` is given). */
  readonly status?: number | undefined
  /** Wait this long before answering. */
  readonly delayMs?: number | undefined
  /** Hold the request until this is released (then apply the rest of the fault). */
  readonly hold?: Hold | undefined
  /** Answer with this raw body (status 200 unless `status` is given). */
  readonly body?: string | undefined
  /** How many requests the fault applies to; unlimited when unset. */
  readonly times?: number | undefined
}

export interface WebhookInput {
  readonly event: WebhookEventNames
  readonly id?: string | undefined
  /** Unix seconds; now when unset. */
  readonly createdAt?: number | undefined
  readonly room?: { readonly name: string; readonly sid?: string | undefined } | undefined
  readonly participant?:
    | { readonly identity: string; readonly sid?: string | undefined; readonly name?: string | undefined }
    | undefined
}

export interface LocalLiveKit {
  /** http://127.0.0.1:<port> */
  readonly url: string
  readonly apiKey: string
  readonly apiSecret: string
  readonly webhookApiKey: string
  readonly webhookApiSecret: string
  readonly rooms: ReadonlyMap<string, LocalRoom>
  /** Every request in arrival order; `status` is 0 until it is answered. */
  readonly requests: ReadonlyArray<{ readonly method: string; readonly status: number }>
  /** The room each authorized DeleteRoom named, in arrival order (one that no longer existed too). */
  readonly deletions: ReadonlyArray<string>
  readonly inject: (fault: LiveKitFault) => void
  readonly clear: () => void
  /** The body and `Authorization` header LiveKit would send for this event. */
  readonly signWebhook: (event: WebhookInput) => Promise<{ body: string; authorization: string }>
  readonly sendWebhook: (url: string, event: WebhookInput) => Promise<{ status: number; body: string }>
  readonly stop: () => Promise<void>
}

export interface LocalLiveKitOptions {
  readonly apiKey?: string | undefined
  readonly apiSecret?: string | undefined
  readonly webhookApiKey?: string | undefined
  readonly webhookApiSecret?: string | undefined
}

const TWIRP_CODES: Record<number, string> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  408: "deadline_exceeded",
  409: "already_exists",
  429: "resource_exhausted",
  503: "unavailable",
  504: "deadline_exceeded",
}

// RoomServiceClient only parses an error body when the content type is exactly this.
const twirpError = (status: number, msg: string) =>
  new Response(JSON.stringify({ code: TWIRP_CODES[status] ?? "internal", msg }), {
    status,
    headers: { "Content-Type": "application/json" },
  })

const randomId = (prefix: string) => `${prefix}${randomBytes(9).toString("base64url")}`
const nowSeconds = () => Math.floor(Date.now() / 1000)
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

type Json = Record<string, unknown>
const field = (body: Json, camel: string, snake: string): unknown => body[camel] ?? body[snake]
const str = (value: unknown) => (typeof value === "string" ? value : "")
const num = (value: unknown) => (typeof value === "number" ? value : Number(value ?? 0) || 0)

const roomMessage = (room: LocalRoom) =>
  new Room({
    sid: room.sid,
    name: room.name,
    emptyTimeout: room.emptyTimeout,
    maxParticipants: room.maxParticipants,
    metadata: room.metadata,
    creationTime: BigInt(room.creationTime),
    numParticipants: room.participants.length,
  })

// Twirp's Go server writes proto field names and default values.
const twirpJson = { useProtoFieldName: true, emitDefaultValues: true } as const

const grantFor = (method: RoomServiceMethod, body: Json): ((claims: ClaimGrants) => boolean) => {
  switch (method) {
    case "CreateRoom":
    case "DeleteRoom":
      return (claims) => claims.video?.roomCreate === true
    case "ListRooms":
      return (claims) => claims.video?.roomList === true
    case "ListParticipants":
      return (claims) => claims.video?.roomAdmin === true && claims.video.room === str(body.room)
  }
}

const METHODS: ReadonlyArray<RoomServiceMethod> = [
  "CreateRoom",
  "DeleteRoom",
  "ListRooms",
  "ListParticipants",
]
const isMethod = (name: string): name is RoomServiceMethod =>
  (METHODS as ReadonlyArray<string>).includes(name)

export const startLocalLiveKit = (options: LocalLiveKitOptions = {}): LocalLiveKit => {
  const apiKey = options.apiKey ?? "parley-local"
  const apiSecret = options.apiSecret ?? randomBytes(32).toString("base64url")
  const webhookApiKey = options.webhookApiKey ?? apiKey
  const webhookApiSecret = options.webhookApiSecret ?? apiSecret
  const verifier = new TokenVerifier(apiKey, apiSecret)
  const rooms = new Map<string, LocalRoom>()
  const requests: Array<{ method: string; status: number }> = []
  const deletions: Array<string> = []
  const faults = faultQueue<LiveKitFault>()

  const authorize = async (request: Request, method: RoomServiceMethod, body: Json) => {
    const header = request.headers.get("authorization") ?? ""
    if (!header.startsWith("Bearer ")) return false
    try {
      return grantFor(method, body)(await verifier.verify(header.slice("Bearer ".length)))
    } catch {
      return false
    }
  }

  const handle = (method: RoomServiceMethod, body: Json): Response => {
    switch (method) {
      case "CreateRoom": {
        const name = str(body.name)
        if (name === "") return twirpError(400, "room name is required")
        const existing = rooms.get(name)
        // LiveKit answers CreateRoom for an existing room with that room.
        const room = existing ?? {
          sid: randomId("RM_"),
          name,
          emptyTimeout: num(field(body, "emptyTimeout", "empty_timeout")),
          maxParticipants: num(field(body, "maxParticipants", "max_participants")),
          metadata: str(body.metadata),
          creationTime: nowSeconds(),
          participants: [],
        }
        rooms.set(name, room)
        return Response.json(roomMessage(room).toJson(twirpJson))
      }
      case "DeleteRoom": {
        deletions.push(str(body.room))
        if (!rooms.delete(str(body.room))) return twirpError(404, "requested room does not exist")
        return Response.json({})
      }
      case "ListRooms": {
        const names = Array.isArray(body.names) ? body.names.map(str) : []
        const listed = [...rooms.values()].filter((room) => names.length === 0 || names.includes(room.name))
        return Response.json({ rooms: listed.map((room) => roomMessage(room).toJson(twirpJson)) })
      }
      case "ListParticipants": {
        const room = rooms.get(str(body.room))
        if (!room) return twirpError(404, "requested room does not exist")
        const participants = room.participants.map((p) => new ParticipantInfo(p).toJson(twirpJson))
        return Response.json({ participants })
      }
    }
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const path = new URL(request.url).pathname
      const match = /^\/twirp\/livekit\.RoomService\/([A-Za-z]+)$/.exec(path)
      const method = match?.[1] ?? path
      // Recorded on arrival (status 0 until answered), so a test sees a request still in flight.
      const record = { method, status: 0 }
      requests.push(record)
      const respond = (response: Response) => {
        record.status = response.status
        return response
      }
      if (request.method !== "POST" || !match) return respond(twirpError(404, "no such method"))
      const fault = faults.take(method)
      if (fault?.hold) await fault.hold.enter()
      if (fault?.delayMs) await sleep(fault.delayMs)
      if (fault && (fault.status !== undefined || fault.body !== undefined)) {
        const status = fault.status ?? 200
        return respond(
          fault.body !== undefined
            ? new Response(fault.body, { status, headers: { "Content-Type": "application/json" } })
            : twirpError(status, "injected fault"),
        )
      }
      if (!isMethod(method)) return respond(twirpError(404, "no such method"))
      let body: Json
      try {
        const parsed: unknown = await request.json()
        body = typeof parsed === "object" && parsed !== null ? (parsed as Json) : {}
      } catch {
        return respond(twirpError(400, "malformed JSON body"))
      }
      if (!(await authorize(request, method, body))) {
        return respond(twirpError(401, "invalid token or missing permissions"))
      }
      return respond(handle(method, body))
    },
  })

  const trackParticipant = (input: WebhookInput, sid: string) => {
    const room = input.room && rooms.get(input.room.name)
    if (!room || !input.participant) return
    const others = room.participants.filter((p) => p.identity !== input.participant?.identity)
    const joined = { sid, identity: input.participant.identity, name: input.participant.name ?? "" }
    if (input.event === "participant_joined")
      rooms.set(room.name, { ...room, participants: [...others, joined] })
    if (input.event === "participant_left") rooms.set(room.name, { ...room, participants: others })
  }

  const signWebhook = async (input: WebhookInput) => {
    const known = input.room && rooms.get(input.room.name)
    const room = input.room
      ? known
        ? roomMessage(known)
        : new Room({ name: input.room.name, sid: input.room.sid ?? randomId("RM_") })
      : undefined
    if (room && input.room?.sid) room.sid = input.room.sid
    const participantSid = input.participant?.sid ?? randomId("PA_")
    const participant = input.participant
      ? new ParticipantInfo({
          identity: input.participant.identity,
          sid: participantSid,
          name: input.participant.name ?? "",
        })
      : undefined
    trackParticipant(input, participantSid)
    const message = new WebhookEvent({
      id: input.id ?? randomId("EV_"),
      createdAt: BigInt(input.createdAt ?? nowSeconds()),
      room,
      participant,
    })
    // The SDK's WebhookEvent subclass resets `event` to "" after the constructor copies it in.
    message.event = input.event
    const body = message.toJsonString()
    const token = new AccessToken(webhookApiKey, webhookApiSecret, { ttl: "5m" })
    token.sha256 = createHash("sha256").update(body).digest("base64")
    // LiveKit sends the bare JWT, without a "Bearer " prefix.
    return { body, authorization: await token.toJwt() }
  }

  return {
    url: `http://127.0.0.1:${server.port}`,
    apiKey,
    apiSecret,
    webhookApiKey,
    webhookApiSecret,
    rooms,
    requests,
    deletions,
    inject: faults.inject,
    clear: () => {
      faults.clear()
      requests.length = 0
      deletions.length = 0
    },
    signWebhook,
    sendWebhook: async (url, input) => {
      const { body, authorization } = await signWebhook(input)
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/webhook+json", Authorization: authorization },
        body,
      })
      return { status: response.status, body: await response.text() }
    },
    stop: () => server.stop(true),
  }
}

/** The local LiveKit server for the lifetime of the enclosing scope. */
export const scopedLocalLiveKit = (options: LocalLiveKitOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => startLocalLiveKit(options)),
    (local) => Effect.promise(() => local.stop()),
  )
