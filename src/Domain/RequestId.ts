import { FiberRef } from "effect"
import { globalValue } from "effect/GlobalValue"

/** The id of the request being served; set once per request by the HTTP layer. */
export const CurrentRequestId = globalValue("Parley/CurrentRequestId", () => FiberRef.unsafeMake(""))

const SAFE_ID = /^[A-Za-z0-9_.:-]{1,128}$/
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/** CSPRNG bytes drawn in blocks: one `getRandomValues` per ~170 request ids, not one per id. */
const pool = { bytes: new Uint8Array(4096), next: 4096 }

/**
 * `prefix` and random base62 text from a CSPRNG (rejection sampling keeps it unbiased), as one flat
 * string: appending character by character would make a chain of ropes, two dozen heap cells that a
 * request id keeps for as long as its request waits.
 */
export const randomBase62 = (length: number, prefix = ""): string => {
  const codes = new Array<number>(prefix.length + length)
  for (let i = 0; i < prefix.length; i++) codes[i] = prefix.charCodeAt(i)
  let at = prefix.length
  while (at < codes.length) {
    if (pool.next === pool.bytes.length) {
      crypto.getRandomValues(pool.bytes)
      pool.next = 0
    }
    const byte = pool.bytes[pool.next++] as number
    if (byte < 248) codes[at++] = BASE62.charCodeAt(byte % 62)
  }
  return String.fromCharCode(...codes)
}

/** Echo a caller's id when it is short and safe, else mint `req_…`. */
export const requestIdFrom = (incoming: string | undefined): string =>
  incoming !== undefined && SAFE_ID.test(incoming) ? incoming : randomBase62(24, "req_")
