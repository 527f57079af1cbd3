import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { CACHE_CHANNEL, KEYS_TOPIC } from "../Cache.ts"
import { ApiKey } from "../Domain/ApiKey.ts"
import { fromId, UnixFromDate } from "../Domain/Columns.ts"
import { repository } from "../Domain/Errors.ts"
import { OrgId } from "../Domain/Ids.ts"
import { Organization } from "../Domain/Organization.ts"
import { decodeFound, makeTable, RepositoryTag } from "../Repository.ts"

/** An `organizations` row as the API's Organization. */
const OrganizationFromRow = Schema.Struct({
  ...Organization.fields,
  org_id: fromId(Organization.fields.org_id),
  created_at: UnixFromDate,
})
type OrganizationRow = typeof OrganizationFromRow.Encoded

/** An `api_keys` row as the API lists it (never its hash). */
const ApiKeyFromRow = Schema.Struct({
  ...ApiKey.fields,
  key_id: fromId(ApiKey.fields.key_id),
  created_at: UnixFromDate,
  revoked_at: Schema.NullOr(UnixFromDate),
})
type ApiKeyRow = typeof ApiKeyFromRow.Encoded & { readonly org_id: string; readonly key_hash: string }

const NewOrganization = Schema.Struct({ id: Schema.String, name: Schema.String })
const NewApiKey = Schema.Struct({
  id: Schema.String,
  org_id: Schema.String,
  name: Schema.NullOr(Schema.String),
  prefix: Schema.String,
  key_hash: Schema.String,
})

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const ownerOf = SqlSchema.findOne({
    Request: Schema.String,
    Result: Schema.Struct({ org_id: OrgId }),
    execute: (hash) => sql`SELECT org_id FROM api_keys WHERE key_hash = ${hash} AND revoked_at IS NULL`,
  })
  return repository({
    insertOrg: SqlSchema.single({
      Request: NewOrganization,
      Result: OrganizationFromRow,
      execute: (org) => sql`INSERT INTO organizations ${sql.insert(org)} RETURNING *`,
    }),
    findOrg: SqlSchema.findOne({
      Request: Schema.String,
      Result: OrganizationFromRow,
      execute: (id) => sql`SELECT * FROM organizations WHERE id = ${id}`,
    }),
    listOrgs: SqlSchema.findAll({
      Request: Schema.Void,
      Result: OrganizationFromRow,
      execute: () => sql`SELECT * FROM organizations ORDER BY created_at DESC, id DESC`,
    })(undefined),
    insertKey: SqlSchema.single({
      Request: NewApiKey,
      Result: ApiKeyFromRow,
      execute: (key) => sql`INSERT INTO api_keys ${sql.insert(key)} RETURNING *`,
    }),
    listKeys: SqlSchema.findAll({
      Request: Schema.String,
      Result: ApiKeyFromRow,
      execute: (orgId) =>
        sql`SELECT * FROM api_keys WHERE org_id = ${orgId} ORDER BY created_at DESC, id DESC`,
    }),
    /** Tells every instance's key cache in the same transaction (NOTIFY is delivered at commit). */
    revokeKey: SqlSchema.findOne({
      Request: Schema.String,
      Result: ApiKeyFromRow,
      execute: (id) => sql`
        UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${id}
        RETURNING *, pg_notify(${CACHE_CHANNEL}, ${KEYS_TOPIC})::text AS notified`,
    }),
    /** The organization owning an unrevoked key with this hash. */
    orgForKeyHash: (hash: string) =>
      Effect.map(
        ownerOf(hash),
        Option.map((key) => key.org_id),
      ),
    countKeys: SqlSchema.single({
      Request: Schema.Void,
      Result: Schema.Struct({ n: Schema.Int }),
      execute: () => sql`SELECT count(*)::int AS n FROM api_keys`,
    })(undefined).pipe(Effect.map((count) => count.n)),
  })
})

/** The same operations on tables in memory, read through the same row schemas. */
const makeInMemory = Effect.gen(function* () {
  const orgs = yield* makeTable<OrganizationRow>()
  const keys = yield* makeTable<ApiKeyRow>()
  const org = Schema.decode(OrganizationFromRow)
  const key = Schema.decode(ApiKeyFromRow)
  // insertion order, so newest first is the reverse
  const newestFirst = <Row>(rows: ReadonlyArray<Row>) => [...rows].reverse()

  return repository(
    {
      insertOrg: (o: typeof NewOrganization.Type) =>
        orgs.insert((at) => ({ ...o, created_at: at })).pipe(Effect.flatMap(org)),
      findOrg: (id: string) =>
        Effect.flatMap(
          orgs.find((row) => row.id === id),
          decodeFound(OrganizationFromRow),
        ),
      listOrgs: Effect.flatMap(orgs.rows, (rows) => Effect.forEach(newestFirst(rows), (row) => org(row))),
      insertKey: (k: typeof NewApiKey.Type) =>
        keys.insert((at) => ({ ...k, created_at: at, revoked_at: null })).pipe(Effect.flatMap(key)),
      listKeys: (orgId: string) =>
        Effect.flatMap(keys.rows, (rows) =>
          Effect.forEach(newestFirst(rows.filter((row) => row.org_id === orgId)), (row) => key(row)),
        ),
      revokeKey: (id: string) =>
        keys
          .update(
            (row) => row.id === id,
            (row, at) => Effect.succeed({ ...row, revoked_at: row.revoked_at ?? at }),
          )
          .pipe(Effect.flatMap(decodeFound(ApiKeyFromRow))),
      orgForKeyHash: (hash: string) =>
        Effect.flatMap(
          keys.find((row) => row.key_hash === hash && row.revoked_at === null),
          (row) => decodeFound(OrgId)(Option.map(row, (k) => k.org_id)),
        ),
      countKeys: Effect.map(keys.rows, (rows) => rows.length),
    },
    // nothing to be unavailable here: a row its schema rejects is a bug, as in the database
    Effect.orDie,
  )
})

export class AuthRepo extends RepositoryTag<AuthRepo>()("Parley/AuthRepo", make, makeInMemory) {}
