/** SIGTERM on a real process: long-polls answer with the current state, then a clean exit 0. */
import { expect, test } from "bun:test"
import { Effect, Layer, ManagedRuntime } from "effect"
import pg from "pg"
import { Agents } from "../src/Agents.ts"
import { ApiKeys } from "../src/Auth/ApiKeys.ts"
import type { OrgId } from "../src/Domain/Ids.ts"
import { freshDatabaseUrl, sqlLayerFor } from "./support/db.ts"
import { eventually } from "./support/wait.ts"

const freePort = () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  probe.stop(true)
  return port
}

test("SIGTERM answers a pending long-poll with the current state and exits 0", async () => {
  const databaseUrl = await freshDatabaseUrl()
  const port = freePort()
  const child = Bun.spawn(["bun", "src/main.ts"], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "Warning",
    },
    stdout: "ignore",
    stderr: "pipe",
  })
  const base = `http://127.0.0.1:${port}`
  const locker = new pg.Client({ connectionString: databaseUrl })
  const observer = new pg.Client({ connectionString: databaseUrl })
  try {
    await eventually(() =>
      fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      ),
    )
    const runtime = ManagedRuntime.make(
      Layer.mergeAll(ApiKeys.Live, Agents.Live).pipe(Layer.provideMerge(sqlLayerFor(databaseUrl))),
    )
    const { apiKey, agentId } = await runtime.runPromise(
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const org = yield* keys.createOrg("shutdown")
        const key = yield* keys.createKey(org.org_id, null)
        const agent = yield* (yield* Agents).create(org.org_id as OrgId, { name: "a", instructions: "b" })
        return { apiKey: key.api_key, agentId: agent.agent_id }
      }),
    )
    await runtime.dispose()
    const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }
    const started = await fetch(`${base}/api/v1/voice/sessions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ agent_id: agentId, participant: { identity: "u" } }),
    })
    expect(started.status).toBe(201)
    const sessionId = ((await started.json()) as { data: { session_id: string } }).data.session_id
    // A long-poll registers its wait, then reads the row: with the table locked that read blocks,
    // so a read waiting on the lock shows the wait is registered before the signal.
    await Promise.all([locker.connect(), observer.connect()])
    await locker.query("BEGIN")
    await locker.query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
    const poll = fetch(
      `${base}/api/v1/voice/sessions/${sessionId}?wait_for_completion=true&timeout_seconds=120`,
      { headers },
    )
    await eventually(async () => {
      const { rows } = await observer.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'SELECT%FROM%sessions%'`,
      )
      return rows[0].n === 1
    })
    child.kill("SIGTERM")
    await locker.query("COMMIT")
    // A wait of 120 s outlasts the test's timeout: only the shutdown can have answered it.
    const answer = await poll
    expect(answer.status).toBe(200)
    const body = (await answer.json()) as { status: string; data: { session_id: string } }
    expect(body.status).toBe("active")
    expect(body.data.session_id).toBe(sessionId)
    expect(await child.exited).toBe(0)
  } catch (e) {
    child.kill("SIGKILL")
    console.error(await new Response(child.stderr).text())
    throw e
  } finally {
    child.kill("SIGKILL")
    await Promise.all([locker.end(), observer.end()]).catch(() => undefined)
  }
})
