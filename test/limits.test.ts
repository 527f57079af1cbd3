/** Fairness over HTTP: 429s with Retry-After in the envelope, no body read before auth, 408 for slow bodies. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { hashKey } from "../src/Auth/ApiKeys.ts"
import { Limits } from "../src/Limits.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { activeSession, call, completeSession, error, getSession, TRANSCRIPT } from "./support/sessions.ts"
import { eventually } from "./support/wait.ts"

const AGENTS = "/api/v1/voice/agents"

const expectRateLimited = (reply: { status: number; body: Record<string, unknown>; headers: Headers }) => {
  expect(reply.status).toBe(429)
  expect(error(reply)).toMatchObject({ type: "rate_limit_error", code: "rate_limited" })
  expect(typeof error(reply).request_id).toBe("string")
  expect(Number(reply.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
}

/**
 * Sends `head` and `body` over a raw connection and never anything more; resolves with everything
 * the server answered once it closes the connection.
 */
const rawRequest = (s: TestServer, head: Array<string>, body: string) =>
  new Promise<string>((resolve, reject) => {
    const { hostname, port } = new URL(s.baseUrl)
    let answer = ""
    Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open: (socket) => {
          socket.write(`${[...head, `Host: ${hostname}`].join("\r\n")}\r\n\r\n${body}`)
        },
        data: (_socket, chunk) => {
          answer += chunk.toString()
        },
        close: () => resolve(answer),
        error: (_socket, e) => reject(e),
      },
    }).catch(reject)
  })

describe("long-polls per key", () => {
  let s: TestServer
  beforeAll(async () => {
    s = await startServer({ maxLongPollsPerKey: 2 })
  })
  afterAll(() => s.dispose())

  const open = (apiKey: string) =>
    s.run(Effect.map(Limits, (limits) => limits.openLongPolls(hashKey(apiKey))))

  test("past the cap a long-poll is 429 with Retry-After; other requests and keys are unaffected", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const wait = "?wait_for_completion=true&timeout_seconds=120"
    const pending = [getSession(s, apiKey, sessionId, wait), getSession(s, apiKey, sessionId, wait)]
    await eventually(async () => (await open(apiKey)) === 2)
    expectRateLimited(await getSession(s, apiKey, sessionId, wait))
    // the same route spelled otherwise is the same long-poll
    expectRateLimited(await call(s, apiKey, "GET", `/api/v1/voice/%73essions/${sessionId}${wait}`))
    expectRateLimited(await call(s, apiKey, "GET", `/api/v1/voice/sessions/${sessionId}/${wait}`))
    expect((await getSession(s, apiKey, sessionId)).status).toBe(200) // not a long-poll
    expect((await getSession(s, apiKey, sessionId, "?wait_for_completion=false")).status).toBe(200)
    const other = await activeSession(s)
    const otherPending = getSession(s, other.apiKey, other.sessionId, wait)
    await eventually(async () => (await open(other.apiKey)) === 1)

    expect((await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })).status).toBe(200)
    for (const reply of await Promise.all(pending)) expect(reply.status).toBe(200)
    expect(await open(apiKey)).toBe(0)
    expect((await getSession(s, apiKey, sessionId, wait)).status).toBe(200)
    expect((await completeSession(s, other.apiKey, other.sessionId, { transcript: TRANSCRIPT })).status).toBe(
      200,
    )
    expect((await otherPending).status).toBe(200)
  })
  test("a long-poll whose client goes away gives its place under the cap back", async () => {
    const { apiKey, sessionId } = await activeSession(s)
    const wait = "?wait_for_completion=true&timeout_seconds=120"
    const leaving = new AbortController()
    const gone = getSession(s, apiKey, sessionId, wait, { signal: leaving.signal }).catch(() => "aborted")
    const staying = getSession(s, apiKey, sessionId, wait)
    await eventually(async () => (await open(apiKey)) === 2)
    expectRateLimited(await getSession(s, apiKey, sessionId, wait))
    leaving.abort()
    expect(await gone).toBe("aborted")
    await eventually(async () => (await open(apiKey)) === 1)
    const next = getSession(s, apiKey, sessionId, wait)
    await eventually(async () => (await open(apiKey)) === 2)
    expect((await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })).status).toBe(200)
    for (const reply of await Promise.all([staying, next])) expect(reply.body.status).toBe("completed")
    expect(await open(apiKey)).toBe(0)
  })
})

describe("request rate per key", () => {
  let s: TestServer
  beforeAll(async () => {
    s = await startServer({ requestRatePerKey: 1, requestBurstPerKey: 5 })
  })
  afterAll(() => s.dispose())

  test("a key past its burst gets 429 with Retry-After; another key does not", async () => {
    const { apiKey } = await s.newTenant()
    for (let i = 0; i < 5; i++) expect((await call(s, apiKey, "GET", AGENTS)).status).toBe(200)
    // A token refills each second: on a slow machine one more request may pass before the 429.
    let reply = await call(s, apiKey, "GET", AGENTS)
    for (let i = 0; i < 20 && reply.status === 200; i++) reply = await call(s, apiKey, "GET", AGENTS)
    expectRateLimited(reply)
    expect((await call(s, (await s.newTenant()).apiKey, "GET", AGENTS)).status).toBe(200)
  })
})

describe("failed authentications per address", () => {
  let s: TestServer
  beforeAll(async () => {
    s = await startServer({ failedAuthPerAddress: 3 })
  })
  afterAll(() => s.dispose())

  test("past the limit the address is refused, even with a valid key, for the rest of the window", async () => {
    const { apiKey } = await s.newTenant()
    const wrong = `pk_live_${"x".repeat(40)}`
    // A missing or malformed header is not a guess: it is answered, and not counted.
    for (let i = 0; i < 5; i++) expect((await call(s, undefined, "GET", AGENTS)).status).toBe(401)
    for (let i = 0; i < 3; i++) {
      const reply = await call(s, wrong, "GET", AGENTS)
      expect(reply.status).toBe(401)
      expect(error(reply).code).toBe("invalid_api_key")
    }
    expectRateLimited(await call(s, wrong, "GET", AGENTS))
    // Answering a valid key normally would tell a guesser it found one.
    expectRateLimited(await call(s, apiKey, "GET", AGENTS))
    expect(Number((await call(s, apiKey, "GET", AGENTS)).headers.get("retry-after"))).toBeLessThanOrEqual(60)
  })
})

describe("bodies", () => {
  let s: TestServer
  beforeAll(async () => {
    s = await startServer({ bodyTimeoutMs: 300 })
  })
  afterAll(() => s.dispose())

  const announcing16MiB = [
    "POST /api/v1/voice/agents HTTP/1.1",
    "Content-Type: application/json",
    "Content-Length: 16777216",
  ]

  test("without a valid key or admin token, a 16 MiB body is refused (401) before it is sent, and the connection closed", async () => {
    // Only 9 of the announced bytes are ever sent: the answer cannot have waited for the body.
    const missing = await rawRequest(s, announcing16MiB, '{"name":"')
    expect(missing).toStartWith("HTTP/1.1 401")
    expect(missing).toContain('"code":"missing_authorization_header"')
    expect(missing.toLowerCase()).toContain("connection: close")
    const wrong = await rawRequest(
      s,
      [...announcing16MiB, `Authorization: Bearer pk_live_${"y".repeat(40)}`],
      "{",
    )
    expect(wrong).toStartWith("HTTP/1.1 401")
    expect(wrong).toContain('"code":"invalid_api_key"')
    const admin = ["POST /admin/v1/orgs HTTP/1.1", "Content-Length: 16777216", "Authorization: Bearer wrong"]
    const adminAnswer = await rawRequest(s, admin, "{")
    expect(adminAnswer).toStartWith("HTTP/1.1 401")
    expect(adminAnswer).toContain('"code":"invalid_api_key"')
  })

  test("a body that does not arrive within BODY_TIMEOUT_MS is cut with 408", async () => {
    const { apiKey } = await s.newTenant()
    const head = [
      "POST /api/v1/voice/agents HTTP/1.1",
      "Content-Type: application/json",
      "Content-Length: 100",
    ]
    const answer = await rawRequest(s, [...head, `Authorization: Bearer ${apiKey}`], '{"name":"')
    expect(answer).toStartWith("HTTP/1.1 408")
    expect(answer).toContain('"type":"invalid_request_error","code":"request_timeout"')
    expect(answer.toLowerCase()).toContain("connection: close")
    // A body that arrives in time is read as usual.
    const created = await call(s, apiKey, "POST", AGENTS, { name: "on time", instructions: "ok" })
    expect(created.status).toBe(200)
  })
})
