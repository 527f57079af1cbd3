/**
 * Idempotency keys: per (organization, key), the request a key was first used with, the lease of the
 * request running it, and once that request has finished, the response every retry is answered with.
 * A row is free again (any request may take it) once it has expired, or while no response is stored
 * and its lease has lapsed (the instance running it died).
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Effect, Option, Schema, SynchronizedRef } from "effect"
import { Jsonb } from "../Domain/Columns.ts"
import { repository } from "../Domain/Errors.ts"
import { RepositoryTag } from "../Repository.ts"

export const KeyRef = Schema.Struct({ orgId: Schema.String, key: Schema.String })
export type KeyRef = typeof KeyRef.Type

/** What a retry must repeat: the same method, path and body digest. */
export const Fingerprint = Schema.Struct({
  method: Schema.String,
  path: Schema.String,
  body_hash: Schema.String,
})
export type Fingerprint = typeof Fingerprint.Type

/** The holder of a key: the request running under it (its random lease token). */
const Held = Schema.Struct({ ...KeyRef.fields, token: Schema.String })
type Held = typeof Held.Type

const Begin = Schema.Struct({
  ...Held.fields,
  ...Fingerprint.fields,
  leaseSeconds: Schema.Number,
  retentionSeconds: Schema.Number,
})
type Begin = typeof Begin.Type

const Renew = Schema.Struct({ ...Held.fields, leaseSeconds: Schema.Number })
type Renew = typeof Renew.Type

/** A response as it is replayed: status, content type, the headers that matter, the body's bytes. */
export const StoredResponse = Schema.Struct({
  status: Schema.Int,
  content_type: Schema.NullOr(Schema.String),
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  body: Schema.Uint8ArrayFromSelf,
})
export type StoredResponse = typeof StoredResponse.Type

const Store = Schema.Struct({
  ...Held.fields,
  ...StoredResponse.fields,
  headers: Jsonb(StoredResponse.fields.headers),
})
type Store = typeof Store.Type

/** A key as found: whose it is, what it was used for, and its response once there is one. */
export const Entry = Schema.Struct({
  ...Fingerprint.fields,
  lease_token: Schema.String,
  /** Expired, or unanswered with a lapsed lease: the next request with this key runs. */
  free: Schema.Boolean,
  status: Schema.NullOr(Schema.Int),
  content_type: Schema.NullOr(Schema.String),
  headers: Schema.NullOr(StoredResponse.fields.headers),
  body: Schema.NullOr(Schema.Uint8ArrayFromSelf),
})
export type Entry = typeof Entry.Type

const Token = Schema.Struct({ lease_token: Schema.String })
const Count = Schema.Struct({ n: Schema.Int })

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const interval = (seconds: number) => sql`make_interval(secs => ${seconds})`
  return repository({
    /**
     * Takes the key for this request if it is free (absent, expired, or abandoned): Some (with this
     * request's token) if taken, None if the key is another request's.
     */
    begin: SqlSchema.findOne({
      Request: Begin,
      Result: Token,
      execute: (b) => sql`
        INSERT INTO idempotency_keys
          (org_id, key, method, path, body_hash, lease_token, locked_until, expires_at)
        VALUES (${b.orgId}, ${b.key}, ${b.method}, ${b.path}, ${b.body_hash}, ${b.token},
          now() + ${interval(b.leaseSeconds)}, now() + ${interval(b.retentionSeconds)})
        ON CONFLICT (org_id, key) DO UPDATE SET
          method = EXCLUDED.method, path = EXCLUDED.path, body_hash = EXCLUDED.body_hash,
          lease_token = EXCLUDED.lease_token, locked_until = EXCLUDED.locked_until,
          status = NULL, content_type = NULL, headers = NULL, body = NULL,
          created_at = now(), expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now()
          OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until <= now())
        RETURNING lease_token`,
    }),
    find: SqlSchema.findOne({
      Request: KeyRef,
      Result: Entry,
      execute: (k) => sql`
        SELECT method, path, body_hash, lease_token, status, content_type, headers, body,
          expires_at <= now() OR (status IS NULL AND locked_until <= now()) AS free
        FROM idempotency_keys WHERE org_id = ${k.orgId} AND key = ${k.key}`,
    }),
    /** The running request's heartbeat: None once the key is no longer its own. */
    renew: SqlSchema.findOne({
      Request: Renew,
      Result: Token,
      execute: (r) => sql`
        UPDATE idempotency_keys SET locked_until = now() + ${interval(r.leaseSeconds)}
        WHERE org_id = ${r.orgId} AND key = ${r.key} AND lease_token = ${r.token} AND status IS NULL
        RETURNING lease_token`,
    }),
    /** Records the response, if the key is still this request's: None if it was taken over. */
    store: SqlSchema.findOne({
      Request: Store,
      Result: Token,
      execute: (s) => sql`
        UPDATE idempotency_keys SET status = ${s.status}, content_type = ${s.content_type},
          headers = ${s.headers}::jsonb, body = ${s.body}, locked_until = now()
        WHERE org_id = ${s.orgId} AND key = ${s.key} AND lease_token = ${s.token} AND status IS NULL
        RETURNING lease_token`,
    }),
    /** Frees the key of a request whose response is not kept (a 5xx, a request refused as invalid). */
    release: SqlSchema.void({
      Request: Held,
      execute: (h) => sql`
        DELETE FROM idempotency_keys
        WHERE org_id = ${h.orgId} AND key = ${h.key} AND lease_token = ${h.token} AND status IS NULL`,
    }),
    /** Deletes up to `limit` expired keys; how many it deleted. */
    purge: SqlSchema.single({
      Request: Schema.Int,
      Result: Count,
      execute: (limit) => sql`
        WITH gone AS (
          DELETE FROM idempotency_keys WHERE (org_id, key) IN (
            SELECT org_id, key FROM idempotency_keys WHERE expires_at <= now() LIMIT ${limit})
          RETURNING 1)
        SELECT count(*)::int AS n FROM gone`,
    }),
  })
})

interface Row extends Fingerprint {
  readonly lease_token: string
  readonly locked_until: number
  readonly expires_at: number
  readonly response: StoredResponse | undefined
}

/** The same operations on a map in memory, on the Effect clock (a TestClock in unit tests). */
const makeInMemory = Effect.gen(function* () {
  const table = yield* SynchronizedRef.make(new Map<string, Row>())
  const id = (k: KeyRef) => `${k.orgId}/${k.key}`
  const isFree = (row: Row, now: number) =>
    row.expires_at <= now || (row.response === undefined && row.locked_until <= now)
  /** One statement: `run` sees the rows and the time, and returns its result and the rows after it. */
  const statement = <A>(run: (rows: Map<string, Row>, now: number) => readonly [A, Map<string, Row>]) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      SynchronizedRef.modify(table, (rows) => run(new Map(rows), now)),
    )
  /** Replaces the row of a key still held by `h` and unanswered; whether there was one. */
  const held = (h: Held, change: (row: Row, now: number) => Row | undefined) =>
    statement((rows, now) => {
      const row = rows.get(id(h))
      if (row === undefined || row.lease_token !== h.token || row.response !== undefined)
        return [Option.none<{ lease_token: string }>(), rows] as const
      const next = change(row, now)
      if (next === undefined) rows.delete(id(h))
      else rows.set(id(h), next)
      return [Option.some({ lease_token: h.token }), rows] as const
    })
  return repository(
    {
      begin: (b: Begin) =>
        statement((rows, now) => {
          const row = rows.get(id(b))
          if (row !== undefined && !isFree(row, now))
            return [Option.none<{ lease_token: string }>(), rows] as const
          rows.set(id(b), {
            method: b.method,
            path: b.path,
            body_hash: b.body_hash,
            lease_token: b.token,
            locked_until: now + b.leaseSeconds * 1000,
            expires_at: now + b.retentionSeconds * 1000,
            response: undefined,
          })
          return [Option.some({ lease_token: b.token }), rows] as const
        }),
      find: (k: KeyRef) =>
        statement((rows, now) => [
          Option.map(
            Option.fromNullable(rows.get(id(k))),
            (row): Entry => ({
              method: row.method,
              path: row.path,
              body_hash: row.body_hash,
              lease_token: row.lease_token,
              free: isFree(row, now),
              status: row.response?.status ?? null,
              content_type: row.response?.content_type ?? null,
              headers: row.response?.headers ?? null,
              body: row.response?.body ?? null,
            }),
          ),
          rows,
        ]),
      renew: (r: Renew) => held(r, (row, now) => ({ ...row, locked_until: now + r.leaseSeconds * 1000 })),
      store: (s: Store) =>
        held(s, (row, now) => ({
          ...row,
          locked_until: now,
          response: { status: s.status, content_type: s.content_type, headers: s.headers, body: s.body },
        })),
      release: (h: Held) => Effect.asVoid(held(h, () => undefined)),
      purge: (limit: number) =>
        statement((rows, now) => {
          const expired = [...rows].filter(([, row]) => row.expires_at <= now).slice(0, limit)
          for (const [key] of expired) rows.delete(key)
          return [{ n: expired.length }, rows] as const
        }),
    },
    Effect.orDie,
  )
})

export class IdempotencyRepo extends RepositoryTag<IdempotencyRepo>()(
  "Parley/IdempotencyRepo",
  make,
  makeInMemory,
) {}
