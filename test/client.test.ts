/**
 * The published client (`parley/client`): every route through it from Bun (the source, by the
 * package's `bun` export condition), and the README example under Node (the built `dist/`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { Effect } from "effect"
import { makeClient, run, VoiceSessionNotFound } from "parley/client"
import type { SessionId } from "../src/Domain/Ids.ts"
import { ADMIN_TOKEN, failure, startServer, type TestServer } from "./support/server.ts"
import { UNKNOWN_ID } from "./support/sessions.ts"
import { eventually } from "./support/wait.ts"

const ROOT = join(import.meta.dir, "..")
let s: TestServer

beforeAll(async () => {
  s = await startServer()
})
afterAll(async () => {
  await s.dispose()
})

describe("parley/client", () => {
  test("every route, typed and decoded", async () => {
    const admin = makeClient({ baseUrl: s.baseUrl, apiKey: ADMIN_TOKEN })
    const anonymous = makeClient({ baseUrl: s.baseUrl })
    expect(await run(anonymous.ops.health())).toEqual({ status: "ok" })
    expect(await run(anonymous.ops.ready())).toEqual({ status: "ready" })

    // admin: an organization and its key
    const org = await run(admin.admin.createOrg({ payload: { name: "Client Org" } }))
    const key = await run(
      admin.admin.createKey({ path: { org_id: org.data.org_id }, payload: { name: "k" } }),
    )
    expect((await run(admin.admin.listOrgs())).data.data.map((o) => o.org_id)).toContain(org.data.org_id)
    const keys = await run(admin.admin.listKeys({ path: { org_id: org.data.org_id } }))
    expect(keys.data.data.map((k) => k.key_id)).toEqual([key.data.key_id])

    const parley = makeClient({ baseUrl: s.baseUrl, apiKey: key.data.api_key })
    expect((await run(parley.voices.list())).data.data.length).toBeGreaterThan(0)

    // agents
    const created = await run(parley.agents.create({ payload: { name: "Typed", instructions: "Be brief." } }))
    const agentId = created.data.agent_id
    expect((await run(parley.agents.list({ urlParams: {} }))).data.data.map((a) => a.agent_id)).toEqual([
      agentId,
    ])
    expect((await run(parley.agents.get({ path: { id: agentId } }))).data.name).toBe("Typed")
    expect((await run(parley.agents.preview({ path: { id: agentId } }))).data.system_instruction).toContain(
      "Be brief.",
    )
    const updated = await run(parley.agents.update({ path: { id: agentId }, payload: { name: "Renamed" } }))
    expect(updated.data.name).toBe("Renamed")

    // sessions: start, list, get, complete
    const started = await run(
      parley.sessions.start({ payload: { agent_id: agentId, participant: { identity: "caller" } } }),
    )
    const id = started.data.session_id
    const listed = await run(parley.sessions.list({ urlParams: { status: ["active"] } }))
    expect(listed.data.data.map((x) => x.session_id)).toEqual([id])
    expect((await run(parley.sessions.get({ path: { id }, urlParams: {} }))).data.status).toBe("active")
    const completed = await run(
      parley.sessions.complete({ path: { id }, payload: { transcript: [{ role: "user", text: "Hello." }] } }),
    )
    expect(completed.data.status).toBe("completed")
    const withTranscript = await run(parley.sessions.list({ urlParams: { include: ["transcript"] } }))
    expect(withTranscript.data.data[0].transcript).toEqual([{ role: "user", text: "Hello." }])

    const deleted = await run(parley.agents.delete({ path: { id: agentId } }))
    expect(deleted.data).toMatchObject({ agent_id: agentId })

    // the LiveKit webhook is LiveKit's route: unsigned, it is refused, decoded as its error class
    const refused = await failure(anonymous.webhooks.livekit())
    expect(refused._tag).toBe("WebhookVerificationFailed")

    expect((await run(admin.admin.revokeKey({ path: { key_id: key.data.key_id } }))).data.revoked).toBeTrue()
  })

  test("the webhook endpoint routes, typed and decoded", async () => {
    const { apiKey } = await s.newTenant()
    const parley = makeClient({ baseUrl: s.baseUrl, apiKey })
    // a name that does not resolve here is accepted when saved; its attempts are refused and recorded
    const url = "https://hooks.example.invalid/parley"
    const created = await run(
      parley.webhookEndpoints.create({ payload: { url, enabled_events: ["voice_session.started"] } }),
    )
    const id = created.data.endpoint_id
    expect(created.data.secret).toStartWith("whsec_")
    expect((await run(parley.webhookEndpoints.list())).data.data.map((e) => e.endpoint_id)).toEqual([id])
    expect((await run(parley.webhookEndpoints.get({ path: { id } }))).data.url).toBe(url)
    const updated = await run(
      parley.webhookEndpoints.update({ path: { id }, payload: { description: "CRM" } }),
    )
    expect(updated.data.description).toBe("CRM")
    const rotated = await run(parley.webhookEndpoints.rotateSecret({ path: { id } }))
    expect(rotated.data.secret).not.toBe(created.data.secret)

    const agent = await run(parley.agents.create({ payload: { name: "Hooked", instructions: "Ask." } }))
    await run(
      parley.sessions.start({ payload: { agent_id: agent.data.agent_id, participant: { identity: "u" } } }),
    )
    const deliveries = () => run(parley.webhookEndpoints.deliveries({ path: { id }, urlParams: {} }))
    await eventually(async () => (await deliveries()).data.data[0]?.attempts.length === 1)
    const [delivery] = (await deliveries()).data.data
    expect(delivery.event_type).toBe("voice_session.started")
    expect(delivery.attempts[0].error).toContain("does not resolve")
    const redelivered = await run(
      parley.webhookEndpoints.redeliver({ path: { id, delivery_id: delivery.delivery_id } }),
    )
    expect(redelivered.data.event_id).toBe(delivery.event_id)

    expect((await run(parley.webhookEndpoints.delete({ path: { id } }))).data).toMatchObject({
      endpoint_id: id,
    })
    expect((await failure(parley.webhookEndpoints.get({ path: { id } })))._tag).toBe(
      "WebhookEndpointNotFound",
    )
  })

  test("run rejects with the decoded error itself; the Effect fails with it", async () => {
    const { apiKey } = await s.newTenant()
    const parley = makeClient({ baseUrl: s.baseUrl, apiKey })
    const get = parley.sessions.get({ path: { id: UNKNOWN_ID as SessionId }, urlParams: {} })
    const rejected = await run(get).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(rejected).toBeInstanceOf(VoiceSessionNotFound)
    expect(rejected).toMatchObject({
      message: expect.stringContaining(UNKNOWN_ID),
      request_id: expect.any(String),
    })
    const failed = await Effect.runPromise(Effect.flip(get))
    expect(failed._tag).toBe("VoiceSessionNotFound")
  })

  const node = Bun.which("node")
  test.skipIf(node === null)("Node imports the built entry point and runs the README example", async () => {
    const build = Bun.spawnSync(["bun", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" })
    // (stderr in the object: a failure shows it)
    expect({ code: build.exitCode, stderr: build.stderr.toString() }).toMatchObject({ code: 0 })
    const { apiKey } = await s.newTenant()
    const example = Bun.spawn([node ?? "node", join(ROOT, "test/support/client-example.mjs")], {
      cwd: ROOT,
      env: { ...process.env, PARLEY_URL: s.baseUrl, PARLEY_API_KEY: apiKey },
      stdout: "pipe",
      stderr: "pipe",
    })
    const [stdout, stderr, code] = await Promise.all([
      new Response(example.stdout).text(),
      new Response(example.stderr).text(),
      example.exited,
    ])
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
    expect(JSON.parse(stdout)).toEqual({ status: "completed", results: { seats: 25 } })
  })
})
