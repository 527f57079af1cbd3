/** Responses under idempotency keys: which are kept, how they are stored and replayed. */
import { HttpServerResponse } from "@effect/platform"
import { Option } from "effect"
import type { Entry, StoredResponse } from "./Repo.ts"

/**
 * Response headers never replayed: the replay has its own request id, and the rest describe the
 * connection or the message, not the answer.
 */
const NOT_REPLAYED = new Set(["x-request-id", "connection", "content-length", "transfer-encoding", "date"])

/** A response worth keeping: below 500, with its body in memory (every API response is). */
export const toStored = (response: HttpServerResponse.HttpServerResponse): Option.Option<StoredResponse> => {
  const { body, status } = response
  if (status >= 500 || (body._tag !== "Uint8Array" && body._tag !== "Empty")) return Option.none()
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(response.headers))
    if (!NOT_REPLAYED.has(name)) headers[name] = value
  return Option.some({
    status,
    content_type: body._tag === "Uint8Array" ? body.contentType : null,
    headers,
    body: body._tag === "Uint8Array" ? body.body : new Uint8Array(),
  })
}

/** The stored response again, marked `Idempotent-Replayed: true` (its request id is the new request's). */
export const replay = (entry: Entry & StoredResponse) => {
  const headers = { ...entry.headers, "idempotent-replayed": "true" }
  return entry.content_type === null
    ? HttpServerResponse.empty({ status: entry.status, headers })
    : HttpServerResponse.uint8Array(entry.body, {
        status: entry.status,
        contentType: entry.content_type,
        headers,
      })
}

/** Whether the key's request has finished and its response is stored. */
export const answered = (entry: Entry): entry is Entry & StoredResponse =>
  entry.status !== null && entry.headers !== null && entry.body !== null
