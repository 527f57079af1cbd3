/**
 * Delivers the outbox on every instance. A loop claims due deliveries (DeliveriesRepo.claim, shared
 * by all instances through `FOR UPDATE SKIP LOCKED`) and sends each on a fiber of its own; it looks
 * again when woken — by a NOTIFY on OUTBOUND_CHANNEL (sent with the commit of every new or redelivered
 * delivery, on any instance), by the end of one of its own attempts (the session's next event may
 * be due), by a retry coming due, by its LISTEN connection coming (back) up — or at the latest every
 * POLL_EVERY_MS (a retry due later, work another instance's crash left behind).
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Duration, Effect, FiberSet, Layer, Option, Queue, Schedule } from "effect"
import { AppConfig } from "../Config.ts"
import { type Claimed, DeliveriesRepo, type Outcome } from "./DeliveriesRepo.ts"
import { listenForever } from "./Listener.ts"
import { OUTBOUND_CHANNEL } from "./Outbox.ts"
import { signedHeaders } from "./Signing.ts"
import { refusal } from "./Targets.ts"

const POLL_EVERY_MS = 5_000
/** Delivered and given-up deliveries, and their events, are kept this long (then pruned hourly). */
export const DELIVERY_RETENTION_DAYS = 30
/** Attempts in flight on one instance at most. */
const MAX_IN_FLIGHT = 32
/** Retries back off to at most this much between attempts. */
const MAX_DELAY_MS = 3_600_000
/** What is kept of a refusing receiver's answer, in the attempt's `error`. */
const ERROR_EXCERPT = 200

/** Exponential backoff with jitter: after attempt n, base·2^(n-1) capped, half of it random. */
export const backoffMs = (attempt: number, baseMs: number, random: number) => {
  const delay = Math.min(MAX_DELAY_MS, baseMs * 2 ** Math.min(attempt - 1, 30))
  return delay / 2 + (delay / 2) * random
}

/** A failed request in a line (without Bun's hint about `verbose: true`). */
const describe = (cause: unknown) =>
  (cause instanceof Error
    ? `${cause.name === "Error" ? "" : `${cause.name}: `}${cause.message}`
    : String(cause)
  ).replace(/ For more information, pass `verbose: true`.*$/s, "")

/** The start of a refusing receiver's answer (for the attempt's `error`); the rest is not read. */
const excerpt = async (response: Response) => {
  const reader = response.body?.getReader()
  if (reader === undefined) return ""
  const { value } = await reader.read()
  await reader.cancel().catch(() => undefined)
  return new TextDecoder().decode(value?.subarray(0, ERROR_EXCERPT))
}

/** One POST of a claimed delivery, all of it (the address check too) within `timeoutMs`: what happened,
 * never a failure. */
const attempt = (c: Claimed, timeoutMs: number, allowPrivate: boolean) =>
  Effect.gen(function* () {
    const attemptedAt = new Date(yield* Clock.currentTimeMillis)
    const started = performance.now()
    const outcome = (statusCode: number | null, error: string | null): Outcome => ({
      attemptedAt,
      statusCode,
      latencyMs: performance.now() - started,
      error,
      delivered: statusCode !== null && statusCode >= 200 && statusCode < 300,
    })
    const send = Effect.gen(function* () {
      // resolved again now: the name may point elsewhere since the endpoint was saved
      const refused = yield* refusal(c.url, allowPrivate, "refuse")
      if (refused !== undefined) return outcome(null, `refused: the URL ${refused}`)
      const secrets = c.previous_secret === null ? [c.secret] : [c.secret, c.previous_secret]
      const headers = signedHeaders(secrets, c.event_id, Math.floor(attemptedAt.getTime() / 1000), c.body)
      return yield* Effect.tryPromise({
        try: async (signal) => {
          // never followed: a redirect could lead anywhere, past the address check
          const response = await fetch(c.url, {
            method: "POST",
            headers,
            body: c.body,
            redirect: "manual",
            signal,
          })
          const ok = response.status >= 200 && response.status < 300
          if (ok) {
            await response.body?.cancel().catch(() => undefined)
            return outcome(response.status, null)
          }
          return outcome(response.status, `HTTP ${response.status}: ${await excerpt(response)}`)
        },
        catch: (cause) => outcome(null, describe(cause)),
      }).pipe(Effect.merge)
    })
    return yield* send.pipe(
      Effect.timeoutFail({
        duration: timeoutMs,
        onTimeout: () => outcome(null, `timed out after ${timeoutMs} ms`),
      }),
      Effect.merge,
    )
  })

export const DispatcherLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const repo = yield* DeliveriesRepo
    const pg = yield* PgClient.PgClient
    const wakeUps = yield* Queue.sliding<void>(1)
    const wake = Queue.offer(wakeUps, undefined)
    const work = yield* FiberSet.make()
    // an instance that dies mid-attempt leaves its claim to the others after this
    const leaseSeconds = Math.ceil(config.webhookTimeoutMs / 1000) + 10

    yield* listenForever(pg.config, OUTBOUND_CHANNEL, () => Queue.unsafeOffer(wakeUps, undefined)).pipe(
      Effect.forkScoped,
    )

    const deliver = (c: Claimed) =>
      Effect.gen(function* () {
        const outcome = yield* attempt(c, config.webhookTimeoutMs, config.webhookAllowPrivate).pipe(
          // shutdown: the attempt is logged as cut short and left due for whichever instance is next
          Effect.onInterrupt(() =>
            repo
              .release(c, {
                attemptedAt: new Date(),
                statusCode: null,
                latencyMs: 0,
                error: "interrupted: the server stopped during the attempt",
                delivered: false,
              })
              .pipe(Effect.ignore),
          ),
        )
        const delayMs = backoffMs(c.attempt, config.webhookRetryBaseMs, Math.random())
        const next = yield* repo.record(c, outcome, delayMs / 1000, config.webhookRetryWindowSeconds)
        if (Option.isSome(next)) {
          // a retry due before the next poll is looked for when it is due; a later one by the polls
          // (so a failing endpoint holds no timers here)
          const dueIn = next.value.getTime() - (yield* Clock.currentTimeMillis)
          if (dueIn < POLL_EVERY_MS)
            yield* FiberSet.run(work, Effect.delay(wake, Duration.millis(Math.max(0, dueIn))))
        }
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`webhook delivery ${c.id} not recorded`, cause)),
        Effect.ensuring(wake),
      )

    let inFlight = 0
    const pass = Effect.gen(function* () {
      const room = MAX_IN_FLIGHT - inFlight
      if (room <= 0) return false
      const claimed = yield* repo.claim({ limit: room, leaseSeconds })
      for (const c of claimed) {
        inFlight += 1
        yield* FiberSet.run(
          work,
          deliver(c).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                inFlight -= 1
              }),
            ),
          ),
        )
      }
      return claimed.length === room
    })

    yield* pass.pipe(
      Effect.catchAllCause((cause) => Effect.as(Effect.logWarning("webhook dispatch failed", cause), false)),
      // a full batch: there may be more at once; else sleep until woken or the next poll
      Effect.flatMap((full) =>
        full ? Effect.void : Effect.race(Queue.take(wakeUps), Effect.sleep(POLL_EVERY_MS)),
      ),
      Effect.forever,
      Effect.forkScoped,
    )

    yield* repo.prune(DELIVERY_RETENTION_DAYS).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("pruning webhook deliveries failed", cause)),
      Effect.repeat(Schedule.spaced("1 hour")),
      Effect.forkScoped,
    )
  }),
).pipe(Layer.provide(DeliveriesRepo.Live))
