import { FiberRef } from "effect"
import { globalValue } from "effect/GlobalValue"

/** The id of the request being served; set once per request by the HTTP layer. */
export const CurrentRequestId = globalValue("Parley/CurrentRequestId", () => FiberRef.unsafeMake(""))

const SAFE_ID = /^[A-Za-z0-9_.:-]{1,128}$/
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/** CSPRNG bytes drawn in blocks: one `getRandomValues` per ~170 request ids, not one per id. */
const pool = { bytes: new Uint8Array(4096), next: 4096 }

/** Random base62 text from a CSPRNG (rejection sampling keeps it unbiased). */
export const randomBase62 = (length: number): string => {
  let out = ""
  while (out.length < length) {
    if (pool.next === pool.bytes.length) {
      crypto.getRandomValues(pool.bytes)
      pool.next = 0
    }
    const byte = pool.bytes[pool.next++]
    if (byte < 248) out += BASE62[byte % 62]
  }
  return out
}

/** Echo a caller's id when it is short and safe, else mint `req_…`. */
export const requestIdFrom = (incoming: string | undefined): string =>
  incoming !== undefined && SAFE_ID.test(incoming) ? incoming : `req_${randomBase62(24)}`
