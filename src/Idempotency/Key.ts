/** The rules of idempotency keys, shared by the middleware and the OpenAPI document (no services here). */

export const IDEMPOTENCY_HEADER = "Idempotency-Key"
export const MAX_KEY_LENGTH = 255
/** Visible ASCII, no spaces: UUIDs and every usual token format fit; two keys joined by a comma do not. */
const KEY = /^[\x21-\x7e]+$/

/** How long a key and its response are kept. */
export const RETENTION_SECONDS = 24 * 3600
/** How long a retry waits for the request still running under its key before answering 409. */
export const WAIT_SECONDS = 30

/** Why `value` is not a usable key, if it is not. */
export const keyProblem = (value: string): string | undefined => {
  if (value === "") return "must not be empty"
  if (value.length > MAX_KEY_LENGTH) return `must be at most ${MAX_KEY_LENGTH} characters`
  if (!KEY.test(value)) return "must be printable ASCII without spaces (a UUID is a good key)"
  return undefined
}
