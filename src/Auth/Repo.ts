import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import { orUnavailable } from "../Domain/Errors.ts"

export interface OrgRow {
  readonly id: string
  readonly name: string
  readonly created_at: Date
}

export interface ApiKeyRow {
  readonly id: string
  readonly org_id: string
  readonly name: string | null
  readonly prefix: string
  readonly created_at: Date
  readonly revoked_at: Date | null
}

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return {
    insertOrg: (id: string, name: string) =>
      orUnavailable(
        sql<OrgRow>`INSERT INTO organizations (id, name) VALUES (${id}, ${name}) RETURNING id, name, created_at`,
      ).pipe(Effect.map((rows) => rows[0])),
    findOrg: (id: string) =>
      orUnavailable(sql<OrgRow>`SELECT id, name, created_at FROM organizations WHERE id = ${id}`).pipe(
        Effect.map((rows) => Option.fromNullable(rows[0])),
      ),
    listOrgs: orUnavailable(
      sql<OrgRow>`SELECT id, name, created_at FROM organizations ORDER BY created_at DESC, id DESC`,
    ),
    findOrgByName: (name: string) =>
      orUnavailable(
        sql<OrgRow>`SELECT id, name, created_at FROM organizations WHERE name = ${name} ORDER BY created_at LIMIT 1`,
      ).pipe(Effect.map((rows) => Option.fromNullable(rows[0]))),
    insertKey: (key: { id: string; orgId: string; name: string | null; prefix: string; hash: string }) =>
      orUnavailable(sql<ApiKeyRow>`
        INSERT INTO api_keys (id, org_id, name, prefix, key_hash)
        VALUES (${key.id}, ${key.orgId}, ${key.name}, ${key.prefix}, ${key.hash})
        RETURNING id, org_id, name, prefix, created_at, revoked_at`).pipe(Effect.map((rows) => rows[0])),
    listKeys: (orgId: string) =>
      orUnavailable(sql<ApiKeyRow>`
        SELECT id, org_id, name, prefix, created_at, revoked_at FROM api_keys
        WHERE org_id = ${orgId} ORDER BY created_at DESC, id DESC`),
    revokeKey: (id: string) =>
      orUnavailable(sql<ApiKeyRow>`
        UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${id}
        RETURNING id, org_id, name, prefix, created_at, revoked_at`).pipe(
        Effect.map((rows) => Option.fromNullable(rows[0])),
      ),
    /** The organization owning an unrevoked key with this hash. */
    orgForKeyHash: (hash: string) =>
      orUnavailable(
        sql<{ org_id: string }>`SELECT org_id FROM api_keys WHERE key_hash = ${hash} AND revoked_at IS NULL`,
      ).pipe(Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => r.org_id))),
    countKeys: orUnavailable(sql<{ n: number }>`SELECT count(*)::int AS n FROM api_keys`).pipe(
      Effect.map((rows) => rows[0].n),
    ),
  }
})

export class AuthRepo extends Context.Tag("Parley/AuthRepo")<AuthRepo, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(AuthRepo, make)
}
