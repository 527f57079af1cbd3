import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Option, Schema, Struct } from "effect"
import { CACHE_CHANNEL } from "../Cache.ts"
import { Agent, AgentSummary, Voice } from "../Domain/Agent.ts"
import { fromId, Jsonb, UnixFromDate } from "../Domain/Columns.ts"
import { repository } from "../Domain/Errors.ts"
import { JsonRecord } from "../Domain/Fields.ts"
import { AgentId } from "../Domain/Ids.ts"
import {
  decodeFound,
  findOwned,
  makeTable,
  OrgKey,
  owned,
  RepositoryTag,
  transaction,
} from "../Repository.ts"

/** Everything stored of an agent but its ids and timestamps: its settings and compiled instruction. */
export const AgentConfig = Schema.Struct({
  ...Struct.omit(Agent.fields, "agent_id", "created_at", "updated_at"),
  voice: Schema.NullOr(Voice),
})
export type AgentConfig = typeof AgentConfig.Type

const rowFields = { agent_id: fromId(AgentId), created_at: UnixFromDate, updated_at: UnixFromDate }

/** An `agents` row as the API's Agent; an unset voice (NULL) reads as `{}`, as the Pi API shows it. */
export const AgentFromRow = Schema.Struct({
  ...Agent.fields,
  ...rowFields,
  voice: Schema.transform(Schema.NullOr(Voice), Schema.typeSchema(Voice), {
    strict: true,
    decode: (voice) => voice ?? {},
    encode: (voice) => voice,
  }),
})
type AgentRow = typeof AgentFromRow.Encoded & { readonly org_id: string }

const SummaryFromRow = Schema.Struct({ ...AgentSummary.fields, ...rowFields })

/** An agent's stored columns, `jsonb` ones as JSON text. */
const Columns = Schema.Struct({
  id: Schema.String,
  ...AgentConfig.fields,
  questions: Jsonb(AgentConfig.fields.questions),
  behaviors: Jsonb(AgentConfig.fields.behaviors),
  output_schema: Jsonb(AgentConfig.fields.output_schema),
  output_schema_strict: Schema.NullOr(Jsonb(JsonRecord)),
  voice: Schema.NullOr(Jsonb(Voice)),
  metadata: Jsonb(AgentConfig.fields.metadata),
})

const Page = Schema.Struct({ orgId: Schema.String, limit: Schema.Int, offset: Schema.Int })
type Page = typeof Page.Type

const NewAgent = Schema.Struct({ ...Columns.fields, org_id: Schema.String })

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const insert = SqlSchema.single({
    Request: NewAgent,
    Result: AgentFromRow,
    execute: (row) => sql`INSERT INTO agents ${sql.insert(row)} RETURNING *`,
  })

  const page = SqlSchema.findAll({
    Request: Page,
    Result: Schema.Struct({ ...SummaryFromRow.fields, total: Schema.Int }),
    execute: ({ orgId, limit, offset }) => sql`
      SELECT id, name, language, purpose, is_active, created_at, updated_at, count(*) OVER ()::int AS total
      FROM agents WHERE org_id = ${orgId} ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`,
  })

  const count = SqlSchema.single({
    Request: Schema.String,
    Result: Schema.Struct({ total: Schema.Int }),
    execute: (orgId) => sql`SELECT count(*)::int AS total FROM agents WHERE org_id = ${orgId}`,
  })

  /** A page of summaries, newest first, and how many agents the organization has in all. */
  const list = (request: Page) =>
    Effect.gen(function* () {
      const rows = yield* page(request)
      // past the last page the window count has no row to ride on
      const total = rows.length > 0 ? rows[0].total : (yield* count(request.orgId)).total
      return { agents: rows.map(({ total: _, ...summary }) => summary), total }
    })

  const lock = findOwned(sql, "agents", AgentFromRow, "FOR UPDATE")

  /** Every instance's cache drops a changed agent: the NOTIFY (see Cache.ts `agentTopic`) is sent
   * with the transaction's commit. */
  const notify = sql.literal(
    `pg_notify('${CACHE_CHANNEL}', 'agent:' || org_id || ':' || id)::text AS notified`,
  )

  const write = SqlSchema.single({
    Request: Columns,
    Result: AgentFromRow,
    execute: (row) => sql`
      UPDATE agents SET ${sql.update(row, ["id"])}, updated_at = clock_timestamp()
      WHERE id = ${row.id} RETURNING *, ${notify}`,
  })

  /** Read-modify-write under a row lock, so concurrent PATCHes never lose each other's fields. */
  const update = (key: OrgKey, change: (agent: Agent) => AgentConfig) =>
    transaction(sql)(
      Effect.flatMap(
        lock(key),
        Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (agent) => Effect.asSome(write({ ...change(agent), id: key.id })),
        }),
      ),
    )

  const deactivate = SqlSchema.findOne({
    Request: OrgKey,
    Result: Schema.Struct({ id: Schema.String }),
    execute: ({ orgId, id }) => sql`
      UPDATE agents SET is_active = false,
        updated_at = CASE WHEN is_active THEN clock_timestamp() ELSE updated_at END
      WHERE org_id = ${orgId} AND id = ${id} RETURNING id, ${notify}`,
  })

  return repository({
    insert,
    find: findOwned(sql, "agents", AgentFromRow),
    list,
    update,
    deactivate: (key: OrgKey) => Effect.map(deactivate(key), Option.isSome),
  })
})

/** The same operations on a table in memory, read through the same row schemas. */
const makeInMemory = Effect.gen(function* () {
  const table = yield* makeTable<AgentRow>()
  const decode = Schema.decode(AgentFromRow)
  const decodeSome = decodeFound(AgentFromRow)
  const summarize = Schema.decode(SummaryFromRow)

  return repository(
    {
      insert: (agent: typeof NewAgent.Type) =>
        table.insert((at) => ({ ...agent, created_at: at, updated_at: at })).pipe(Effect.flatMap(decode)),
      find: (key: OrgKey) => Effect.flatMap(table.find(owned(key)), decodeSome),
      list: ({ orgId, limit, offset }: Page) =>
        Effect.gen(function* () {
          // insertion order, so newest first is the reverse
          const rows = (yield* table.rows).filter((row) => row.org_id === orgId).reverse()
          const agents = yield* Effect.forEach(rows.slice(offset, offset + limit), (row) => summarize(row))
          return { agents, total: rows.length }
        }),
      update: (key: OrgKey, change: (agent: Agent) => AgentConfig) =>
        table
          .update(owned(key), (row, at) =>
            Effect.map(decode(row), (agent) => ({ ...row, ...change(agent), updated_at: at })),
          )
          .pipe(Effect.flatMap(decodeSome)),
      deactivate: (key: OrgKey) =>
        table
          .update(owned(key), (row, at) =>
            Effect.succeed(row.is_active ? { ...row, is_active: false, updated_at: at } : row),
          )
          .pipe(Effect.map(Option.isSome)),
    },
    // nothing to be unavailable here: a row its schema rejects is a bug, as in the database
    Effect.orDie,
  )
})

export class AgentsRepo extends RepositoryTag<AgentsRepo>()("Parley/AgentsRepo", make, makeInMemory) {}
