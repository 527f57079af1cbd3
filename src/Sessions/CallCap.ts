/**
 * The server-enforced call cap (extension). A session with a cap (`max_duration_seconds`, from the
 * start body or the agent's behaviors) whose agent does not opt out (`behaviors.enforce_max_duration:
 * false`) ends `CALL_CAP_GRACE_SECONDS` after its cap, counted from the session's start: its Gemini
 * Live token stops working then (or at the ttl, if sooner), and its LiveKit room is deleted then by a
 * room cleanup scheduled in the transaction that inserts the session (RoomCleanups.ts, done by
 * whichever instance's sweeper claims it first). The session's status is left alone: the client still
 * posts the transcript. Both times are recorded in the session's metadata, flat, as the LiveKit
 * webhook records its own (`livekit_*`): Unix seconds.
 */
import type { Behaviors } from "../Domain/Agent.ts"

/** When the server ends the call: the room's deletion is due then. Written at the start. */
export const CALL_CAP_ENFORCED_AT = "call_cap_enforced_at"
/** When the server deleted the room (or found it gone). Written once, by the sweeper. */
export const CALL_CAP_ROOM_DELETED_AT = "call_cap_room_deleted_at"

export interface CallCapPlan {
  /** The cap plus its grace: how long after the start the call may last. */
  readonly windowSeconds: number
  /** When the room is to be deleted. */
  readonly dueAt: Date
  /** The session's metadata at its start. */
  readonly metadata: Readonly<Record<string, number>>
}

/** The cap a start enforces, or undefined: no cap, or the agent opted out. */
export const callCapPlan = (
  cap: number | null,
  behaviors: Behaviors,
  createdAt: Date,
  graceSeconds: number,
): CallCapPlan | undefined => {
  if (cap === null || behaviors.enforce_max_duration === false) return undefined
  const windowSeconds = cap + graceSeconds
  const dueAt = new Date(createdAt.getTime() + windowSeconds * 1000)
  // rounded down as created_at is, so that it is exactly created_at + cap + grace
  return { windowSeconds, dueAt, metadata: { [CALL_CAP_ENFORCED_AT]: Math.floor(dueAt.getTime() / 1000) } }
}

/** What the sweeper adds to the metadata once the room is deleted, at `atSeconds`. */
export const roomDeleted = (atSeconds: number) => ({ [CALL_CAP_ROOM_DELETED_AT]: atSeconds })
