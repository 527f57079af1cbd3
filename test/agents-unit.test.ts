/** The Agents service over the in-memory repository (no database, no HTTP), on a TestClock. */
import { describe, expect, test } from "bun:test"
import { type Context, Effect, TestClock, TestContext } from "effect"
import { compileSystemInstruction } from "../src/Agents/SystemInstruction.ts"
import { Agents } from "../src/Agents.ts"
import type { CreateAgent } from "../src/Domain/Agent.ts"
import { AgentId, OrgId } from "../src/Domain/Ids.ts"

/** Runs `f` with its own service and table, for a new organization, on a TestClock starting at 0. */
const withAgents = <A, E>(f: (agents: Context.Tag.Service<Agents>, orgId: OrgId) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.flatMap(Agents, (agents) => f(agents, OrgId.make(crypto.randomUUID()))).pipe(
      Effect.provide(Agents.Test),
      Effect.provide(TestContext.TestContext),
    ),
  )

const qualifier: CreateAgent = {
  name: "Qualifier",
  instructions: "Qualify the lead.",
  purpose: "Sales",
  questions: [{ key: "budget", ask: "What is your budget?", type: "number" }],
  output_schema: { budget: "number" },
  voice: { name: "Kore", language_code: "de-DE" },
  metadata: { team: "emea" },
}

describe("create and get", () => {
  test("timestamps are the clock's, the instruction is compiled, an unset voice reads as {}", async () => {
    const { created, agent } = await withAgents((agents, orgId) =>
      Effect.gen(function* () {
        yield* TestClock.adjust("42 seconds")
        const created = yield* agents.create(orgId, { name: "Plain", instructions: "Chat." })
        return { created, agent: yield* agents.get(orgId, created.agent_id) }
      }),
    )
    expect(created).toEqual({ agent_id: agent.agent_id, name: "Plain", created_at: 42 })
    expect(agent).toMatchObject({
      language: "en-US",
      voice: {},
      is_active: true,
      created_at: 42,
      updated_at: 42,
    })
    expect(agent.system_instruction).toBe(compileSystemInstruction(agent))
  })

  test("an agent is visible only to its own organization", async () => {
    const errors = await withAgents((agents, orgId) =>
      Effect.gen(function* () {
        const { agent_id } = yield* agents.create(orgId, qualifier)
        const other = OrgId.make(crypto.randomUUID())
        return yield* Effect.all([
          Effect.flip(agents.get(other, agent_id)),
          Effect.flip(agents.preview(other, agent_id)),
          Effect.flip(agents.update(other, agent_id, { name: "Taken" })),
          Effect.flip(agents.remove(other, agent_id)),
          Effect.flip(agents.get(orgId, AgentId.make(crypto.randomUUID()))),
        ])
      }),
    )
    for (const error of errors) expect(error).toMatchObject({ _tag: "VoiceAgentNotFound", param: "id" })
  })
})

describe("list", () => {
  test("newest first, paginated, with the organization's total", async () => {
    const pages = await withAgents((agents, orgId) =>
      Effect.gen(function* () {
        for (const name of ["a", "b", "c", "d", "e"]) {
          yield* agents.create(orgId, { name, instructions: "Hi." })
          yield* TestClock.adjust("1 second")
        }
        yield* agents.create(OrgId.make(crypto.randomUUID()), { name: "elsewhere", instructions: "Hi." })
        return yield* Effect.all([
          agents.list(orgId, 2, 0),
          agents.list(orgId, 2, 4),
          agents.list(orgId, 2, 10),
        ])
      }),
    )
    expect(pages.map((page) => page.data.map((agent) => agent.name))).toEqual([["e", "d"], ["a"], []])
    expect(pages.map(({ has_more, total_count }) => ({ has_more, total_count }))).toEqual([
      { has_more: true, total_count: 5 },
      { has_more: false, total_count: 5 },
      { has_more: false, total_count: 5 },
    ])
    expect(Object.keys(pages[0].data[0]).sort()).toEqual(
      ["agent_id", "created_at", "is_active", "language", "name", "purpose", "updated_at"].sort(),
    )
  })
})

describe("update", () => {
  test("provided fields are replaced whole, null clears, the rest is kept and the instruction recompiled", async () => {
    const { before, after } = await withAgents((agents, orgId) =>
      Effect.gen(function* () {
        const { agent_id } = yield* agents.create(orgId, qualifier)
        const before = yield* agents.get(orgId, agent_id)
        yield* TestClock.adjust("5 seconds")
        const after = yield* agents.update(orgId, agent_id, {
          name: "Renamed",
          questions: [{ key: "seats", ask: "How many seats?", type: "number" }],
          purpose: null,
          voice: null,
        })
        return { before, after }
      }),
    )
    expect(after).toMatchObject({
      name: "Renamed",
      questions: [{ key: "seats", ask: "How many seats?", type: "number" }],
      purpose: null,
      voice: {},
      instructions: before.instructions,
      output_schema: before.output_schema,
      metadata: before.metadata,
      created_at: 0,
      updated_at: 5,
    })
    expect(after.system_instruction).toBe(compileSystemInstruction(after))
    expect(after.system_instruction).not.toBe(before.system_instruction)
  })

  test("concurrent updates of different fields both survive", async () => {
    const agent = await withAgents((agents, orgId) =>
      Effect.gen(function* () {
        const { agent_id } = yield* agents.create(orgId, qualifier)
        yield* Effect.all(
          [
            agents.update(orgId, agent_id, { name: "Concurrent" }),
            agents.update(orgId, agent_id, { purpose: "Both kept" }),
            agents.update(orgId, agent_id, { metadata: { run: "1" } }),
          ],
          { concurrency: "unbounded" },
        )
        return yield* agents.get(orgId, agent_id)
      }),
    )
    expect(agent).toMatchObject({ name: "Concurrent", purpose: "Both kept", metadata: { run: "1" } })
  })
})

describe("delete", () => {
  test("is soft: the agent stays readable, inactive, and can start no session", async () => {
    const result = await withAgents((agents, orgId) =>
      Effect.gen(function* () {
        const { agent_id } = yield* agents.create(orgId, qualifier)
        yield* TestClock.adjust("3 seconds")
        const deleted = yield* agents.remove(orgId, agent_id)
        yield* TestClock.adjust("3 seconds")
        const again = yield* agents.remove(orgId, agent_id)
        return {
          deleted,
          again,
          agent: yield* agents.get(orgId, agent_id),
          listed: yield* agents.list(orgId, 10, 0),
          active: yield* Effect.flip(agents.findActive(orgId, agent_id)),
          reactivated: yield* agents.update(orgId, agent_id, { is_active: true }),
        }
      }),
    )
    expect(result.deleted).toEqual({ agent_id: result.agent.agent_id, deleted: true })
    expect(result.again).toEqual(result.deleted)
    // deleting a deleted agent changes nothing, not even updated_at
    expect(result.agent).toMatchObject({ is_active: false, updated_at: 3 })
    expect(result.listed.data.map((agent) => agent.is_active)).toEqual([false])
    expect(result.active._tag).toBe("VoiceAgentNotFound")
    expect(result.reactivated.is_active).toBe(true)
  })
})
