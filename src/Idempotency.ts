/**
 * Idempotency keys with Stripe's semantics on the API's POSTs: the first response to a key is kept
 * per organization for 24 h and replayed to every retry; a key reused for another request is 409.
 * (The header is read, and the request handed over, in Http/Idempotency.ts.)
 */
import { HttpApp, HttpServerResponse } from "@effect/platform"
import { Cause, Clock, Context, Deferred, Effect, Exit, FiberId, Layer, Option } from "effect"
import {
  type ApiErrorClass,
  type ApiErrorInstance,
  errorResponse,
  IdempotencyKeyInUse,
  IdempotencyKeyReused,
  isApiError,
  type ServiceUnavailable,
} from "./Domain/Errors.ts"
import { RETENTION_SECONDS, WAIT_SECONDS } from "./Idempotency/Key.ts"
import { type Fingerprint, IdempotencyRepo, type KeyRef } from "./Idempotency/Repo.ts"
import { answered, replay, toStored } from "./Idempotency/Responses.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { UNTIL_STORED } from "./Repository.ts"

/**
 * A request renews its key's lease every HEARTBEAT while it runs; a lease not renewed for
 * LEASE_SECONDS belongs to an instance that died, and the key is free again.
 */
export const LEASE_SECONDS = 20
const HEARTBEAT = "5 seconds"
/** Between looks at a running key: from 50 ms doubling to 1 s (a request on this instance wakes it at once). */
const pollMs = (looks: number) => Math.min(1000, 50 * 2 ** looks)
const PURGE_EVERY = "10 minutes"
const PURGE_BATCH = 1000

/** One request under a key: the organization's key and what a retry must repeat. */
export interface KeyedRequest extends KeyRef, Fingerprint {}

export interface IdempotencyService {
  /**
   * `served` once per key: the first request runs it (to its end, even if its client goes away),
   * retries get its stored response; a 5xx, or a request refused before its handler ran, frees the key.
   */
  readonly run: <E, R>(
    request: KeyedRequest,
    served: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  ) => Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    E | IdempotencyKeyReused | IdempotencyKeyInUse | ServiceUnavailable,
    R
  >
  /** How many requests wait for another request with their key right now (for tests). */
  readonly waiting: Effect.Effect<number>
  /** Deletes every expired key; how many. */
  readonly purge: Effect.Effect<number, ServiceUnavailable>
}

const reused = (key: string, first: Fingerprint, now: Fingerprint) =>
  new IdempotencyKeyReused({
    message:
      first.method !== now.method || first.path !== now.path
        ? `Idempotency-Key ${key} was first used with ${first.method} ${first.path}; use a new key for another request.`
        : `Idempotency-Key ${key} was first used with another request body; use a new key for another request.`,
    param: "Idempotency-Key",
  })

/** 409 with `Retry-After: 1`: the first request is still running. */
const inUse = Effect.zipRight(
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", "1")),
  ),
  Effect.suspend(
    () =>
      new IdempotencyKeyInUse({
        message: `A request with this Idempotency-Key is still running after ${WAIT_SECONDS} s; retry to get its response.`,
        param: "Idempotency-Key",
      }),
  ),
)

const make = Effect.gen(function* () {
  const repo = yield* IdempotencyRepo
  const { detached } = yield* Lifecycle

  /** Wake-ups of requests waiting on a key that a request of this instance holds. */
  const signals = new Map<string, { readonly done: Deferred.Deferred<void>; waiters: number }>()
  let waiting = 0
  const signalOf = (ref: KeyRef) => `${ref.orgId}/${ref.key}`
  const settled = (ref: KeyRef) =>
    Effect.sync(() => {
      const signal = signals.get(signalOf(ref))
      signals.delete(signalOf(ref))
      if (signal !== undefined) Deferred.unsafeDone(signal.done, Effect.void)
    })
  /** Until the key's request on this instance settles, or `ms` have passed (it may run elsewhere). */
  const awaitChange = (ref: KeyRef, ms: number) =>
    Effect.suspend(() => {
      const id = signalOf(ref)
      const signal = signals.get(id) ?? { done: Deferred.unsafeMake<void>(FiberId.none), waiters: 0 }
      signals.set(id, signal)
      signal.waiters += 1
      waiting += 1
      return Effect.raceFirst(Deferred.await(signal.done), Effect.sleep(ms)).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            waiting -= 1
            signal.waiters -= 1
            if (signal.waiters === 0 && signals.get(id) === signal) signals.delete(id)
          }),
        ),
      )
    })

  /** Runs `served` holding the key, then keeps its response or frees the key. */
  const execute = <E, R>(
    held: KeyRef & { readonly token: string },
    served: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  ) => {
    const release = repo
      .release(held)
      .pipe(
        Effect.catchAll((e) =>
          Effect.logWarning("could not free an idempotency key; its lease will lapse", e),
        ),
      )
    const store = (response: HttpServerResponse.HttpServerResponse) =>
      Option.match(toStored(response), {
        onNone: () => Effect.as(release, response),
        onSome: (stored) =>
          repo.store({ ...held, ...stored }).pipe(
            // What the request did is done: its answer waits until a retry can be answered the same
            // (the heartbeat goes on meanwhile, so the key stays this request's once the database is back).
            Effect.tapError(() => Effect.logWarning("could not store an idempotent response; retrying")),
            Effect.retry(UNTIL_STORED),
            Effect.flatMap((kept) =>
              Option.isSome(kept)
                ? Effect.void
                : Effect.logWarning("an idempotency key was taken over before its response was stored"),
            ),
            Effect.as(response),
          ),
      })
    const heartbeat = repo
      .renew({ ...held, leaseSeconds: LEASE_SECONDS })
      .pipe(Effect.ignore, Effect.delay(HEARTBEAT), Effect.forever)
    const work = Effect.gen(function* () {
      yield* Effect.forkScoped(heartbeat)
      const exit = yield* Effect.exit(served)
      if (Exit.isSuccess(exit)) return yield* store(exit.value)
      // An error the handler answered with (a 404, a 409) is the request's outcome, as a success is;
      // a request refused before its handler ran (validation) or a 5xx is not.
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && isApiError(failure.value)) {
        const error = failure.value
        if ((error.constructor as ApiErrorClass<ApiErrorInstance>).meta.status < 500) {
          // (an error its own schema cannot encode is left to the API's encoder, and not kept)
          const response = yield* Effect.option(errorResponse(error))
          if (Option.isSome(response)) return yield* store(response.value)
        }
      }
      yield* release
      return yield* exit
    })
    return work.pipe(
      Effect.scoped,
      // interrupted (the server stopped before it finished): nothing is kept
      Effect.onInterrupt(() => release),
      Effect.ensuring(settled(held)),
      // the request fiber is uninterruptible here; the work must stay interruptible (timeouts)
      Effect.interruptible,
      detached,
    )
  }

  const run: IdempotencyService["run"] = (request, served) => {
    const ref = { orgId: request.orgId, key: request.key }
    const fingerprint = { method: request.method, path: request.path, body_hash: request.body_hash }
    const attempt = (
      deadline: number,
      looks: number,
    ): Effect.Effect<
      HttpServerResponse.HttpServerResponse,
      Effect.Effect.Error<typeof served> | IdempotencyKeyReused | IdempotencyKeyInUse | ServiceUnavailable,
      Effect.Effect.Context<typeof served>
    > =>
      Effect.gen(function* () {
        const token = crypto.randomUUID()
        const taken = yield* repo.begin({
          ...ref,
          ...fingerprint,
          token,
          leaseSeconds: LEASE_SECONDS,
          retentionSeconds: RETENTION_SECONDS,
        })
        if (Option.isSome(taken)) return yield* execute({ ...ref, token }, served)
        const found = yield* repo.find(ref)
        // freed or abandoned since: take it
        if (Option.isNone(found) || found.value.free) return yield* attempt(deadline, looks)
        const entry = found.value
        if (
          entry.method !== fingerprint.method ||
          entry.path !== fingerprint.path ||
          entry.body_hash !== fingerprint.body_hash
        )
          return yield* reused(request.key, entry, fingerprint)
        if (answered(entry)) return replay(entry)
        const now = yield* Clock.currentTimeMillis
        if (now >= deadline) return yield* inUse
        yield* awaitChange(ref, Math.min(pollMs(looks), deadline - now))
        return yield* attempt(deadline, looks + 1)
      })
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      // a client that gives up waiting stops the wait (the request fiber is uninterruptible here)
      Effect.interruptible(attempt(now + WAIT_SECONDS * 1000, 0)),
    )
  }

  const purge = Effect.gen(function* () {
    let total = 0
    while (true) {
      const { n } = yield* repo.purge(PURGE_BATCH)
      total += n
      if (n < PURGE_BATCH) return total
    }
  })
  yield* purge.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("idempotency key purge failed", cause)),
    Effect.delay(PURGE_EVERY),
    Effect.forever,
    Effect.forkScoped,
  )

  const service: IdempotencyService = {
    run,
    waiting: Effect.sync(() => waiting),
    purge,
  }
  return service
})

export class Idempotency extends Context.Tag("Parley/Idempotency")<Idempotency, IdempotencyService>() {
  /** Over whatever IdempotencyRepo is provided. */
  static readonly layer = Layer.scoped(Idempotency, make)
  static readonly Live = Layer.scoped(Idempotency, make).pipe(Layer.provide(IdempotencyRepo.Live))
  /** Over the in-memory repository, which it also provides (a test can play a crashed instance). */
  static readonly Test = Layer.scoped(Idempotency, make).pipe(Layer.provideMerge(IdempotencyRepo.Test))
}

/** Removes every expired key now (the layer also does so every PURGE_EVERY). */
export const purgeExpired = Effect.flatMap(Idempotency, (service) => service.purge)
