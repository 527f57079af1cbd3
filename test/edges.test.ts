/** Every answer in the envelope, or a clean close: oversized headers, aborted bodies, shutdown cut-offs. */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { connect } from "node:net"
import { Effect } from "effect"
import { Lifecycle } from "../src/Lifecycle.ts"
import { makeHold } from "../src/Local/Faults.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { createAgent, eventually } from "./support/sessions.ts"

let s: TestServer
beforeAll(async () => {
  // a header limit under Bun's own (16 KiB without `--max-http-header-size`), so the test runs either way
  s = await startServer({ maxHeaderBytes: 4096, maxBodyBytes: 1024 })
})
afterAll(() => s.dispose())

const envelopeOf = async (res: Response) => {
  const body = (await res.json()) as { error: Record<string, unknown> }
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "request_id", "type"])
  expect(body.error.request_id).toBe(res.headers.get("x-request-id") as string)
  return body.error
}

test("headers over MAX_HEADER_BYTES → 431 in the envelope, and the connection closes", async () => {
  const res = await s.fetchRaw("/api/v1/voice/agents", { headers: { "x-padding": "a".repeat(6_000) } })
  expect(res.status).toBe(431)
  expect(res.headers.get("connection")).toBe("close")
  expect(await envelopeOf(res)).toMatchObject({
    type: "invalid_request_error",
    code: "request_header_fields_too_large",
  })
  // just under the limit is fine (and still needs a key)
  expect(
    (await s.fetchRaw("/api/v1/voice/agents", { headers: { "x-padding": "a".repeat(3_000) } })).status,
  ).toBe(401)
})

test("a percent-encoded path gets every check its route gets (size, key before body)", async () => {
  const { apiKey } = await s.newTenant()
  const big = JSON.stringify({ name: "a", instructions: "b".repeat(2000) })
  for (const path of ["/api/v1/voice/agents", "/api/v1/voice/%61gents"]) {
    const tooBig = await s.fetchRaw(path, { method: "POST", apiKey, body: big })
    expect(tooBig.status).toBe(413)
    expect(await envelopeOf(tooBig)).toMatchObject({ code: "payload_too_large" })
    const noKey = await s.fetchRaw(path, { method: "POST", body: '{"name": "a"}' })
    expect(noKey.status).toBe(401)
    expect(noKey.headers.get("connection")).toBe("close")
  }
})

test("a client that aborts its body mid-way is not a server failure: no 500, no error log", async () => {
  const { apiKey } = await s.newTenant()
  const { port, hostname } = new URL(s.baseUrl)
  const before = s.logs().length
  const disconnects = s.disconnects()
  await new Promise<void>((done, failed) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `POST /api/v1/voice/agents HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${apiKey}\r\n` +
          "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
          '{"name": "half',
        () => {
          socket.destroy()
          done()
        },
      )
    })
    socket.on("error", failed)
  })
  // the server saw the client go (its handler was interrupted), and logged no failure of its own
  await eventually(() => s.disconnects() > disconnects)
  expect(
    s
      .logs()
      .slice(before)
      .filter((line) => /level=(ERROR|WARN)/.test(line)),
  ).toEqual([])
})

test("a request still running when shutdown's drain time is up is answered 503 in the envelope", async () => {
  // A server of its own: it is drained.
  const own = await startServer()
  try {
    const { apiKey } = await own.newTenant()
    const agentId = await createAgent(own, apiKey)
    const hold = makeHold()
    own.livekit.inject({ method: "CreateRoom", hold, times: 1 })
    const starting = own.fetchRaw("/api/v1/voice/sessions", {
      method: "POST",
      apiKey,
      body: JSON.stringify({ agent_id: agentId, participant: { identity: "late" } }),
    })
    await hold.arrived
    const lifecycle = await own.run(Lifecycle)
    await own.run(Effect.zipRight(lifecycle.beginDraining, lifecycle.cutOff))
    const cut = await starting
    expect(cut.status).toBe(503)
    expect(cut.headers.get("connection")).toBe("close")
    expect(await envelopeOf(cut)).toMatchObject({ type: "api_error", code: "service_unavailable" })
    hold.release()
  } finally {
    await own.dispose()
  }
})
