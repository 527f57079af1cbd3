import { Context, Effect, Layer, Option } from "effect"
import { type AgentConfig, type AgentRow, AgentsRepo } from "./Agents/Repo.ts"
import { compileSystemInstruction } from "./Agents/SystemInstruction.ts"
import type { Agent, AgentSummary, CreateAgent, UpdateAgent } from "./Domain/Agent.ts"
import { toUnix } from "./Domain/Envelope.ts"
import { VoiceAgentNotFound } from "./Domain/Errors.ts"
import type { AgentId, OrgId } from "./Domain/Ids.ts"

type Settings = Omit<AgentConfig, "system_instruction" | "is_active">

/** Every setting with its default filled in and the system instruction compiled from them. */
const compile = (settings: Settings, isActive: boolean): AgentConfig => ({
  ...settings,
  system_instruction: compileSystemInstruction(settings),
  is_active: isActive,
})

const fromCreate = (input: CreateAgent): AgentConfig =>
  compile(
    {
      name: input.name,
      instructions: input.instructions,
      language: input.language ?? "en-US",
      purpose: input.purpose ?? null,
      questions: input.questions ?? [],
      behaviors: input.behaviors ?? {},
      output_schema: input.output_schema ?? {},
      output_schema_strict: input.output_schema_strict ?? null,
      extraction_model: input.extraction_model ?? null,
      voice: input.voice ?? null,
      metadata: input.metadata ?? {},
    },
    true,
  )

/** A PATCH replaces each provided field whole; `null` clears the nullable ones. */
const applyPatch = (row: AgentRow, { is_active, ...patch }: UpdateAgent): AgentConfig => {
  const provided = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined))
  return compile({ ...row, ...provided } as Settings, is_active ?? row.is_active)
}

export const toAgent = (row: AgentRow): Agent => ({
  agent_id: row.id as AgentId,
  name: row.name,
  instructions: row.instructions,
  language: row.language,
  purpose: row.purpose,
  questions: row.questions,
  behaviors: row.behaviors,
  output_schema: row.output_schema,
  output_schema_strict: row.output_schema_strict,
  extraction_model: row.extraction_model,
  voice: row.voice ?? {},
  metadata: row.metadata,
  system_instruction: row.system_instruction,
  is_active: row.is_active,
  created_at: toUnix(row.created_at),
  updated_at: toUnix(row.updated_at),
})

const toSummary = (row: AgentRow): AgentSummary => ({
  agent_id: row.id as AgentId,
  name: row.name,
  language: row.language,
  purpose: row.purpose,
  is_active: row.is_active,
  created_at: toUnix(row.created_at),
  updated_at: toUnix(row.updated_at),
})

const notFound = (id: string) =>
  new VoiceAgentNotFound({ message: `No voice agent with id ${id}.`, param: "id" })

const make = Effect.gen(function* () {
  const repo = yield* AgentsRepo

  const found =
    (id: string) =>
    <E, R>(self: Effect.Effect<Option.Option<AgentRow>, E, R>) =>
      Effect.flatMap(self, (row) =>
        Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(notFound(id)),
      )

  return {
    create: (orgId: OrgId, input: CreateAgent) =>
      Effect.map(repo.insert(crypto.randomUUID(), orgId, fromCreate(input)), (row) => ({
        agent_id: row.id as AgentId,
        name: row.name,
        created_at: toUnix(row.created_at),
      })),

    list: (orgId: OrgId, limit: number, offset: number) =>
      Effect.map(repo.list(orgId, limit, offset), ({ rows, total }) => ({
        object: "list" as const,
        data: rows.map(toSummary),
        has_more: offset + rows.length < total,
        total_count: total,
      })),

    get: (orgId: OrgId, id: AgentId) => repo.find(orgId, id).pipe(found(id), Effect.map(toAgent)),

    /** Compiled from the current settings, whether or not the agent is active (as in the Pi API). */
    preview: (orgId: OrgId, id: AgentId) =>
      repo.find(orgId, id).pipe(
        found(id),
        Effect.map((row) => ({ agent_id: id, system_instruction: compileSystemInstruction(row) })),
      ),

    update: (orgId: OrgId, id: AgentId, patch: UpdateAgent) =>
      repo.update(orgId, id, (row) => applyPatch(row, patch)).pipe(found(id), Effect.map(toAgent)),

    remove: (orgId: OrgId, id: AgentId) =>
      Effect.flatMap(repo.deactivate(orgId, id), (ok) =>
        ok ? Effect.succeed({ agent_id: id, deleted: true as const }) : Effect.fail(notFound(id)),
      ),

    /** An agent row whatever its state: sessions keep working after their agent is deleted. */
    row: (orgId: string, id: string) => repo.find(orgId, id).pipe(found(id)),

    /** The agent a new session runs: it must exist in the organization and be active. */
    findActive: (orgId: OrgId, id: AgentId) =>
      repo.find(orgId, id).pipe(Effect.map(Option.filter((row) => row.is_active)), found(id)),
  }
})

export class Agents extends Context.Tag("Parley/Agents")<Agents, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(Agents, make).pipe(Layer.provide(AgentsRepo.Live))
}
