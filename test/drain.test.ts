/** Shutdown's drain in process: new requests get 503, in-flight ones finish, long-polls answer now. */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { Lifecycle } from "../src/Lifecycle.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { startServer } from "./support/server.ts"
import {
  activeSession,
  data,
  error,
  eventually,
  getSession,
  sessionRow,
  startSession,
  waiters,
} from "./support/sessions.ts"

test("draining: 503 with Connection: close for new requests, in-flight requests and long-polls answered", async () => {
  // A server of its own: draining one that other tests use would refuse their requests.
  const s = await startServer()
  try {
    const { apiKey, agentId, sessionId } = await activeSession(s)
    // A long-poll that outlasts the test's timeout: only the drain can answer it.
    const poll = getSession(s, apiKey, sessionId, "?wait_for_completion=true&timeout_seconds=120")
    await eventually(async () => (await waiters(s, sessionId)) === 1)
    // A session start in flight, held in LiveKit until released.
    const hold = makeHold()
    s.livekit.inject({ method: "CreateRoom", hold, times: 1 })
    const starting = startSession(s, apiKey, { agent_id: agentId, participant: { identity: "late" } })
    await hold.arrived

    const lifecycle = await s.run(Lifecycle)
    await s.run(lifecycle.beginDraining)
    let idle = false
    const idled = s.run(lifecycle.idle).then(() => {
      idle = true
    })

    const polled = await poll
    expect(polled.status).toBe(200)
    expect(polled.body.status).toBe("active")
    expect(data(polled).session_id).toBe(sessionId)

    for (const path of ["/readyz", "/api/v1/voice/agents"]) {
      const refused = await s.fetchRaw(path, { apiKey })
      expect(refused.status).toBe(503)
      expect(refused.headers.get("connection")).toBe("close")
      const body = (await refused.json()) as { error: { code: string; request_id: string } }
      expect(body.error).toMatchObject({ code: "service_unavailable" })
      expect(body.error.request_id).toBe(refused.headers.get("x-request-id") as string)
    }
    // The held start is still in flight, so the server cannot be idle yet.
    expect(idle).toBe(false)

    hold.release()
    const started = await starting
    expect(started.status).toBe(201)
    expect((await sessionRow(s, data(started).session_id as string))?.status).toBe("active")
    await idled
    expect(error(await getSession(s, apiKey, sessionId)).code).toBe("service_unavailable")
  } finally {
    await s.dispose()
  }
})

test("each server has its own lifecycle: draining one leaves another serving", async () => {
  const [a, b] = await Promise.all([startServer(), startServer()])
  try {
    await a.run(Effect.flatMap(Lifecycle, (lifecycle) => lifecycle.beginDraining))
    expect((await a.fetchRaw("/healthz")).status).toBe(503)
    expect((await b.fetchRaw("/healthz")).status).toBe(200)
  } finally {
    await Promise.all([a.dispose(), b.dispose()])
  }
})
