/**
 * In-process caches of the two lookups every authenticated request makes: API key hash → organization
 * and (organization, agent id) → agent. Bounded (least recently used out first), and only ever hold
 * rows that exist: a miss is always asked of the database again. Concurrent requests for a key that
 * is not cached share one load.
 *
 * Writes invalidate them on every instance: the statements that revoke a key or change an agent send
 * a NOTIFY on `CACHE_CHANNEL` in their own transaction, the completion hub's LISTEN connection hands
 * it to `invalidate`, and the writing instance invalidates its own copy before it answers. While that
 * connection is down nothing is cached (a notification could be missed); it flushes when it is back.
 */
import { Cause, Context, Deferred, Effect, FiberId, Layer, Option } from "effect"
import { AppConfig } from "./Config.ts"
import type { Agent } from "./Domain/Agent.ts"
import type { OrgId } from "./Domain/Ids.ts"

export const CACHE_CHANNEL = "parley_cache"
/** A key was revoked: keys are few and revocations rare, so every cached key is dropped. */
export const KEYS_TOPIC = "keys"
/** Payloads name their agent by organization and id (the same string as the cache key). */
export const agentTopic = (orgId: string, id: string) => `agent:${orgId}:${id}`

const CAPACITY = 10_000

interface Entry<V> {
  readonly value: V
  /** When it was read (Effect clock, ms). */
  readonly at: number
}

/** A load in flight, and when it started (Effect clock, ms). */
interface Loading<V> {
  readonly done: Deferred.Deferred<Option.Option<V>, unknown>
  readonly at: number
}

export interface Cached<V> {
  /** The cached value of `key`, else `load`'s, which is kept if it is a row (never a miss). */
  readonly through: <E, R>(
    key: string,
    load: Effect.Effect<Option.Option<V>, E, R>,
  ) => Effect.Effect<Option.Option<V>, E, R>
  /** How many entries are held (tests). */
  readonly size: () => number
}

/**
 * `ttlMs` (CACHE_TTL_MS, default 1 s) is how long an entry is served without asking the database
 * again: even a notification lost on a connection that has not noticed it is broken (a silent
 * partition) delays a revocation by at most this.
 */
const DEFAULT_TTL_MS = 1_000

const make = (ttlMs: number) => {
  const keys = new Map<string, Entry<OrgId>>()
  const agents = new Map<string, Entry<Agent>>()
  // Bumped by every invalidation: a load that started before one may have read the old row, so its
  // result is not kept. Starts off: the LISTEN connection (or the single-instance hub) turns it on.
  const state = { generation: 0, enabled: false }

  // Loads in flight, per key: a burst of requests with one key (a cold cache, an entry past its TTL)
  // makes one query, not one each. Dropped at every invalidation, so that no request that starts
  // after one joins a load that may have read the old row.
  const keyLoads = new Map<string, Loading<OrgId>>()
  const agentLoads = new Map<string, Loading<Agent>>()
  const dropLoads = () => {
    keyLoads.clear()
    agentLoads.clear()
  }

  const flush = () => {
    state.generation += 1
    keys.clear()
    agents.clear()
    dropLoads()
  }

  const cached = <V>(entries: Map<string, Entry<V>>, inFlight: Map<string, Loading<V>>): Cached<V> => {
    return {
      through: <E, R>(key: string, load: Effect.Effect<Option.Option<V>, E, R>) =>
        Effect.clockWith((clock): Effect.Effect<Option.Option<V>, E, R> => {
          if (!state.enabled) return load
          const now = clock.unsafeCurrentTimeMillis()
          const hit = entries.get(key)
          if (hit !== undefined) {
            // re-inserted: a Map iterates in insertion order, so the first entry is the least recent
            entries.delete(key)
            if (now - hit.at < ttlMs) {
              entries.set(key, hit)
              return Effect.succeed(Option.some(hit.value))
            }
          }
          const joined = inFlight.get(key)
          // (a load older than the TTL is not joined: its row may be older than a cached one may be)
          if (joined !== undefined && now - joined.at < ttlMs)
            // its failure is this request's too (the same query); if its request went away, load here
            return Effect.catchAllCause(
              Deferred.await(joined.done as Deferred.Deferred<Option.Option<V>, E>),
              (cause) => (Cause.isInterruptedOnly(cause) ? load : Effect.failCause(cause)),
            )
          const seen = state.generation
          const done = Deferred.unsafeMake<Option.Option<V>, unknown>(FiberId.none)
          const stored = Effect.tap(load, (row) => {
            if (Option.isNone(row) || !state.enabled || seen !== state.generation) return
            entries.set(key, { value: row.value, at: now })
            if (entries.size > CAPACITY) entries.delete(entries.keys().next().value as string)
          })
          // registered and completed as one: an interruption in between would leave joiners waiting
          return Effect.uninterruptibleMask((restore) => {
            inFlight.set(key, { done, at: now })
            return Effect.onExit(restore(stored), (exit) =>
              Effect.sync(() => {
                if (inFlight.get(key)?.done === done) inFlight.delete(key)
                Deferred.unsafeDone(done, exit)
              }),
            )
          })
        }),
      size: () => entries.size,
    }
  }

  return {
    apiKeys: cached(keys, keyLoads),
    /** Keyed by `agentTopic(orgId, id)`. */
    agents: cached(agents, agentLoads),
    /** A notification's payload (or a local write's topic): drops what it names. */
    invalidate: (topic: string) => {
      state.generation += 1
      dropLoads()
      if (topic === KEYS_TOPIC) keys.clear()
      else agents.delete(topic)
    },
    /** Invalidations can reach this instance from now on: start afresh. */
    resume: () => {
      flush()
      state.enabled = true
    },
    /** Invalidations may be missed from now on: drop everything and cache nothing. */
    suspend: () => {
      state.enabled = false
      flush()
    },
  }
}

export class Caches extends Context.Tag("Parley/Caches")<Caches, ReturnType<typeof make>>() {
  /**
   * One layer value, so every service that provides it shares one instance within a server (layers
   * are memoized by reference), while each server started in a process gets its own. The TTL is the
   * configured one where there is a configuration (a server), else the default (unit tests).
   */
  static readonly Live = Layer.effect(
    Caches,
    Effect.map(Effect.serviceOption(AppConfig), (config) =>
      make(Option.match(config, { onNone: () => DEFAULT_TTL_MS, onSome: (c) => c.cacheTtlMs })),
    ),
  )
}
