import { Context, Effect, Layer, Option, Struct } from "effect"
import { type AgentConfig, AgentsRepo } from "./Agents/Repo.ts"
import { compileSystemInstruction } from "./Agents/SystemInstruction.ts"
import { agentTopic, Caches } from "./Cache.ts"
import type { Agent, CreateAgent, UpdateAgent } from "./Domain/Agent.ts"
import { VoiceAgentNotFound } from "./Domain/Errors.ts"
import { AgentId, type OrgId } from "./Domain/Ids.ts"

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
const applyPatch = (agent: Agent, { is_active, ...patch }: UpdateAgent): AgentConfig => {
  const { agent_id, created_at, updated_at, system_instruction, ...settings } = agent
  // decoded payloads carry no `undefined` fields: each key present was sent
  return compile({ ...settings, ...patch }, is_active ?? agent.is_active)
}

/** `param` names the request field that held the id: the path's `id`, or a session's `agent_id`. */
const notFound = (id: string, param = "id") =>
  new VoiceAgentNotFound({ message: `No voice agent with id ${id}.`, param })

const make = Effect.gen(function* () {
  const repo = yield* AgentsRepo
  const caches = yield* Caches
  // ids are matched case-insensitively by PostgreSQL; the cache and the NOTIFY use their text form
  const topic = (orgId: OrgId, id: AgentId) => agentTopic(orgId, id.toLowerCase())
  /** Cached; the statements that change an agent notify every instance, this one drops it at once. */
  const find = (orgId: OrgId, id: AgentId) =>
    // suspended: building the query effect costs more than a cache hit
    caches.agents.through(
      topic(orgId, id),
      Effect.suspend(() => repo.find({ orgId, id })),
    )
  const changed =
    (orgId: OrgId, id: AgentId) =>
    <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.tap(self, () => caches.invalidate(topic(orgId, id)))

  const found =
    (id: string, param?: string) =>
    <E, R>(self: Effect.Effect<Option.Option<Agent>, E, R>) =>
      Effect.flatMap(self, (agent) =>
        Option.isSome(agent) ? Effect.succeed(agent.value) : Effect.fail(notFound(id, param)),
      )

  /** An agent whatever its state: sessions keep working after their agent is deleted. */
  const get = (orgId: OrgId, id: AgentId) => find(orgId, id).pipe(found(id))

  return {
    create: (orgId: OrgId, input: CreateAgent) =>
      Effect.map(
        repo.insert({ ...fromCreate(input), id: AgentId.make(crypto.randomUUID()), org_id: orgId }),
        Struct.pick("agent_id", "name", "created_at"),
      ),

    list: (orgId: OrgId, limit: number, offset: number) =>
      Effect.map(repo.list({ orgId, limit, offset }), ({ agents, total }) => ({
        object: "list" as const,
        data: agents,
        has_more: offset + agents.length < total,
        total_count: total,
      })),

    get,

    /** Compiled from the current settings, whether or not the agent is active (as in the Pi API). */
    preview: (orgId: OrgId, id: AgentId) =>
      Effect.map(get(orgId, id), (agent) => ({
        agent_id: id,
        system_instruction: compileSystemInstruction(agent),
      })),

    update: (orgId: OrgId, id: AgentId, patch: UpdateAgent) =>
      repo.update({ orgId, id }, (agent) => applyPatch(agent, patch)).pipe(changed(orgId, id), found(id)),

    remove: (orgId: OrgId, id: AgentId) =>
      Effect.flatMap(changed(orgId, id)(repo.deactivate({ orgId, id })), (ok) =>
        ok ? Effect.succeed({ agent_id: id, deleted: true as const }) : Effect.fail(notFound(id)),
      ),

    /** The agent a new session runs (its `agent_id`): it must exist in the organization and be active. */
    findActive: (orgId: OrgId, id: AgentId) =>
      find(orgId, id).pipe(Effect.map(Option.filter((agent) => agent.is_active)), found(id, "agent_id")),
  }
})

export class Agents extends Context.Tag("Parley/Agents")<Agents, Effect.Effect.Success<typeof make>>() {
  static readonly Live = Layer.effect(Agents, make).pipe(Layer.provide([AgentsRepo.Live, Caches.Live]))
  /** Over the in-memory repository, for unit tests. */
  static readonly Test = Layer.effect(Agents, make).pipe(Layer.provide([AgentsRepo.Test, Caches.Live]))
}
