import { HttpApp, HttpServerResponse } from "@effect/platform"
import { Clock, Context, Effect, Layer } from "effect"
import { AppConfig } from "./Config.ts"
import { RateLimited } from "./Domain/Errors.ts"

/** Most keys and addresses one server tracks; past it the least recently seen are forgotten. */
const MAX_TRACKED = 100_000

/** Failed authentications are counted per address in windows of this length. */
const FAILED_AUTH_WINDOW_MS = 60_000

/** A map that forgets its least recently set entry when it is full, so no client can grow it. */
const boundedMap = <V>() => {
  const map = new Map<string, V>()
  return {
    get: (key: string) => map.get(key),
    set: (key: string, value: V) => {
      map.delete(key) // re-inserted last: the oldest entry is the first one
      if (map.size >= MAX_TRACKED) map.delete(map.keys().next().value as string)
      map.set(key, value)
    },
    delete: (key: string) => map.delete(key),
  }
}

/** 429 with `Retry-After` (whole seconds, at least 1) on the response. */
export const rateLimited = (message: string, retryAfterMs: number) =>
  Effect.zipRight(
    HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(
        HttpServerResponse.setHeader(
          response,
          "retry-after",
          String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
        ),
      ),
    ),
    new RateLimited({ message }),
  )

const make = Effect.gen(function* () {
  const config = yield* AppConfig
  const buckets = boundedMap<{ tokens: number; at: number }>()
  const failures = boundedMap<{ count: number; since: number }>()
  /** Addresses at their limit, until their window ends: while none is, no address needs looking up. */
  const blocked = new Map<string, number>() // bounded by `failures`: set only for addresses in it
  const longPolls = new Map<string, number>() // only keys with a long-poll open: bounded by them

  /** The current window of `address`'s failed authentications (none once it has passed). */
  const window = (address: string, now: number) => {
    const entry = failures.get(address)
    return entry !== undefined && now - entry.since < FAILED_AUTH_WINDOW_MS ? entry : undefined
  }

  /**
   * Refuses every authenticated request from an address that has failed authentication too often in
   * the current window, even with a valid key: answering it normally would tell a guesser it hit one.
   */
  const checkAddress = (address: string | (() => string)) =>
    // The client's address costs a lookup of its own (Bun's requestIP): only taken when some is blocked.
    blocked.size === 0
      ? Effect.void
      : Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const key = typeof address === "string" ? address : address()
          const until = blocked.get(key)
          if (until === undefined) return Effect.void
          if (until <= now) {
            blocked.delete(key)
            return Effect.void
          }
          return rateLimited("Too many failed authentications from this address; retry later.", until - now)
        })

  const failedAuth = (address: string) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const entry = window(address, now)
      const next = { count: (entry?.count ?? 0) + 1, since: entry?.since ?? now }
      failures.set(address, next)
      if (next.count >= config.failedAuthPerAddress) {
        if (blocked.size >= MAX_TRACKED) blocked.delete(blocked.keys().next().value as string)
        blocked.set(address, next.since + FAILED_AUTH_WINDOW_MS)
      }
    })

  /** One request of `key`'s token bucket: `requestRatePerKey` a second, bursts up to `requestBurstPerKey`. */
  const takeRequest = (key: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const { requestRatePerKey: rate, requestBurstPerKey: burst } = config
      const bucket = buckets.get(key)
      const tokens =
        bucket === undefined ? burst : Math.min(burst, bucket.tokens + ((now - bucket.at) * rate) / 1000)
      if (tokens < 1) {
        buckets.set(key, { tokens, at: now })
        return rateLimited("Too many requests for this API key; retry later.", ((1 - tokens) * 1000) / rate)
      }
      buckets.set(key, { tokens: tokens - 1, at: now })
      return Effect.void
    })

  /**
   * Runs `self` as one of `key`'s long-polls, refused while `maxLongPollsPerKey` are open. Its place is
   * given back when `self` ends, or later: `release` is handed the function that gives it back.
   */
  const longPoll = <A, E, R>(
    key: string,
    self: Effect.Effect<A, E, R>,
    release: (leave: () => void) => void = (leave) => leave(),
  ) =>
    Effect.acquireUseRelease(
      Effect.suspend(() => {
        const open = longPolls.get(key) ?? 0
        if (open >= config.maxLongPollsPerKey)
          return rateLimited("Too many concurrent long-polls for this API key; retry later.", 1000)
        longPolls.set(key, open + 1)
        return Effect.void
      }),
      () => self,
      () => Effect.sync(() => release(leaveLongPoll(key))),
    )
  /** Gives `key`'s place back; holds nothing else (a parked long-poll keeps it until it is answered). */
  const leaveLongPoll = (key: string) => () => {
    const open = (longPolls.get(key) ?? 1) - 1
    if (open === 0) longPolls.delete(key)
    else longPolls.set(key, open)
  }

  return {
    checkAddress,
    failedAuth,
    takeRequest,
    longPoll,
    openLongPolls: (key: string) => longPolls.get(key) ?? 0,
  }
})

/** Per-server fairness limits: failed authentications per address, requests and long-polls per key. */
export class Limits extends Context.Tag("Parley/Limits")<Limits, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(Limits, make)
}
