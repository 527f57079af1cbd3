import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import type { Behaviors, Question, Voice } from "../Domain/Agent.ts"
import { orUnavailable } from "../Domain/Errors.ts"

/** The stored configuration of an agent (everything a client sets). */
export interface AgentConfig {
  readonly name: string
  readonly instructions: string
  readonly language: string
  readonly purpose: string | null
  readonly questions: ReadonlyArray<Question>
  readonly behaviors: Behaviors
  readonly output_schema: Readonly<Record<string, string>>
  readonly output_schema_strict: Readonly<Record<string, unknown>> | null
  readonly extraction_model: string | null
  readonly voice: Voice | null
  readonly metadata: Readonly<Record<string, string>>
  readonly system_instruction: string
  readonly is_active: boolean
}

export interface AgentRow extends AgentConfig {
  readonly id: string
  readonly org_id: string
  readonly created_at: Date
  readonly updated_at: Date
}

const COLUMNS = `id, org_id, name, instructions, language, purpose, questions, behaviors, output_schema,
  output_schema_strict, extraction_model, voice, metadata, system_instruction, is_active, created_at, updated_at`

const json = (value: unknown) => (value === null ? null : JSON.stringify(value))

const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const columns = sql.literal(COLUMNS)

  const values = (a: AgentConfig) => sql`
    name = ${a.name}, instructions = ${a.instructions}, language = ${a.language}, purpose = ${a.purpose},
    questions = ${json(a.questions)}::jsonb, behaviors = ${json(a.behaviors)}::jsonb,
    output_schema = ${json(a.output_schema)}::jsonb, output_schema_strict = ${json(a.output_schema_strict)}::jsonb,
    extraction_model = ${a.extraction_model}, voice = ${json(a.voice)}::jsonb, metadata = ${json(a.metadata)}::jsonb,
    system_instruction = ${a.system_instruction}, is_active = ${a.is_active}`

  const insert = (id: string, orgId: string, a: AgentConfig) =>
    orUnavailable(sql<AgentRow>`
      INSERT INTO agents (id, org_id, name, instructions, language, purpose, questions, behaviors, output_schema,
        output_schema_strict, extraction_model, voice, metadata, system_instruction, is_active)
      VALUES (${id}, ${orgId}, ${a.name}, ${a.instructions}, ${a.language}, ${a.purpose},
        ${json(a.questions)}::jsonb, ${json(a.behaviors)}::jsonb, ${json(a.output_schema)}::jsonb,
        ${json(a.output_schema_strict)}::jsonb, ${a.extraction_model}, ${json(a.voice)}::jsonb,
        ${json(a.metadata)}::jsonb, ${a.system_instruction}, ${a.is_active})
      RETURNING ${columns}`).pipe(Effect.map((rows) => rows[0]))

  const find = (orgId: string, id: string) =>
    orUnavailable(sql<AgentRow>`SELECT ${columns} FROM agents WHERE org_id = ${orgId} AND id = ${id}`).pipe(
      Effect.map((rows) => Option.fromNullable(rows[0])),
    )

  /** One page, newest first, with the organization's total. */
  const list = (orgId: string, limit: number, offset: number) =>
    Effect.gen(function* () {
      const rows = yield* sql<AgentRow & { total: number }>`
        SELECT ${columns}, count(*) OVER ()::int AS total FROM agents WHERE org_id = ${orgId}
        ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`
      if (rows.length > 0) return { rows, total: rows[0].total }
      const [{ total }] = yield* sql<{
        total: number
      }>`SELECT count(*)::int AS total FROM agents WHERE org_id = ${orgId}`
      return { rows, total }
    }).pipe(orUnavailable)

  /** Read-modify-write under a row lock, so concurrent PATCHes never lose each other's fields. */
  const update = (orgId: string, id: string, change: (row: AgentRow) => AgentConfig) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const [row] = yield* sql<AgentRow>`
            SELECT ${columns} FROM agents WHERE org_id = ${orgId} AND id = ${id} FOR UPDATE`
          if (row === undefined) return Option.none<AgentRow>()
          const next = change(row)
          const [updated] = yield* sql<AgentRow>`
            UPDATE agents SET ${values(next)}, updated_at = clock_timestamp()
            WHERE id = ${id} RETURNING ${columns}`
          return Option.some(updated)
        }),
      )
      .pipe(orUnavailable)

  const deactivate = (orgId: string, id: string) =>
    orUnavailable(sql<{ id: string }>`
      UPDATE agents SET is_active = false,
        updated_at = CASE WHEN is_active THEN clock_timestamp() ELSE updated_at END
      WHERE org_id = ${orgId} AND id = ${id} RETURNING id`).pipe(Effect.map((rows) => rows.length > 0))

  return { insert, find, list, update, deactivate }
})

export class AgentsRepo extends Context.Tag("Parley/AgentsRepo")<
  AgentsRepo,
  Effect.Effect.Success<typeof make>
>() {
  static readonly Live = Layer.effect(AgentsRepo, make)
}
