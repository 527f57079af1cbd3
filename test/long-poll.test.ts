/** GET /sessions/:id?wait_for_completion=true: woken by the completion hub, bounded, released on disconnect. */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  completeSession,
  data,
  error,
  eventually,
  getSession,
  type Reply,
  sessionRow,
  TRANSCRIPT,
  waiters,
} from "./support/sessions.ts"

let s: TestServer
beforeAll(async () => {
  s = await startServer()
})
afterAll(() => s.dispose())

const WAIT = (seconds: number) => `?wait_for_completion=true&timeout_seconds=${seconds}`
/** Longer than the test's timeout: a waiter with it is only ever answered by a wake-up. */
const LONGEST = 120

/** Starts a long-poll; resolves (with the pending reply) once the server has registered it with the hub. */
const waitOn = async (apiKey: string, sessionId: string, seconds: number, init: RequestInit = {}) => {
  const reply = getSession(s, apiKey, sessionId, WAIT(seconds), init)
  reply.catch(() => {}) // observed by the caller
  await eventually(async () => (await waiters(s, sessionId)) >= 1)
  return { reply }
}

test("a waiter is woken by the complete and answers with the completed state", async () => {
  const { apiKey, sessionId } = await activeSession(s)
  const { reply: pending } = await waitOn(apiKey, sessionId, LONGEST)
  const completed = await completeSession(s, apiKey, sessionId, {
    transcript: TRANSCRIPT,
    duration_seconds: 60,
  })
  expect(completed.status).toBe(200)
  const reply = await pending
  expect(reply.status).toBe(200)
  expect(reply.body.status).toBe("completed")
  expect(data(reply)).toEqual(data(completed))
  expect(data(reply)).toMatchObject({ status: "completed", transcript: TRANSCRIPT, duration_seconds: 60 })
  expect(await waiters(s, sessionId)).toBe(0)
})

test("a waiter answered after its request fiber ended keeps its request id, in the header and the body", async () => {
  const { apiKey, sessionId } = await activeSession(s)
  const requestId = "long-poll-request-1"
  const { reply: pending } = await waitOn(apiKey, sessionId, LONGEST, {
    headers: { "x-request-id": requestId },
  })
  expect((await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })).status).toBe(200)
  const reply = await pending
  expect(reply.status).toBe(200)
  expect(reply.headers.get("x-request-id")).toBe(requestId)
  expect(reply.headers.get("content-type")).toStartWith("application/json")
  expect(reply.body).toMatchObject({ id: requestId, object: "voice_session", status: "completed" })
  expect(data(reply)).toMatchObject({ session_id: sessionId, status: "completed" })
})

test("a waiter on a session nobody completes answers after timeout_seconds with status active", async () => {
  const { apiKey, sessionId } = await activeSession(s)
  const reply = await getSession(s, apiKey, sessionId, WAIT(1))
  expect(reply.status).toBe(200)
  expect(reply.body.status).toBe("active")
  expect(data(reply)).toMatchObject({ status: "active", transcript: null, results: null, completed_at: null })
  expect(await waiters(s, sessionId)).toBe(0)
  expect((await sessionRow(s, sessionId))?.status).toBe("active")
})

test("on a terminal session wait_for_completion answers at once", async () => {
  const { apiKey, sessionId } = await activeSession(s)
  const completed = await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })
  expect(completed.status).toBe(200)
  // A wait that outlasts the test's timeout: answering at all means answering at once.
  const reply = await getSession(s, apiKey, sessionId, WAIT(LONGEST))
  expect(reply.status).toBe(200)
  expect(reply.body.status).toBe("completed")
  expect(data(reply)).toEqual(data(completed))
})

test("a failed completion wakes waiters too, with status failed", async () => {
  const { apiKey, sessionId } = await activeSession(s, { output_schema: { team_size: "number" } })
  const { reply: pending } = await waitOn(apiKey, sessionId, LONGEST)
  s.gemini.inject({ method: "generateContent", status: 400, times: 1 })
  const completed = await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })
  expect(completed.status).toBe(502)
  expect(error(completed).code).toBe("voice_result_extraction_failed")
  const reply = await pending
  expect(reply.status).toBe(200)
  expect(reply.body.status).toBe("failed")
  expect(data(reply)).toMatchObject({ status: "failed", transcript: TRANSCRIPT, results: null })
  expect(data(reply).error_log).toHaveLength(1)
})

test("a client that disconnects releases its wait; the server keeps working and a later complete succeeds", async () => {
  const { apiKey, sessionId } = await activeSession(s)
  const controller = new AbortController()
  const { reply: pending } = await waitOn(apiKey, sessionId, 30, { signal: controller.signal })
  const aborted = pending.then(
    () => "answered",
    (e: unknown) => (e instanceof Error ? e.name : "error"),
  )
  controller.abort()
  expect(await aborted).toBe("AbortError")
  // The server interrupted the wait, so its hub subscription is gone.
  await eventually(async () => (await waiters(s, sessionId)) === 0)

  const got = await getSession(s, apiKey, sessionId)
  expect(got.status).toBe(200)
  expect(got.body.status).toBe("active")
  const completed = await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })
  expect(completed.status).toBe(200)
  expect(completed.body.status).toBe("completed")
  expect((await sessionRow(s, sessionId))?.status).toBe("completed")
})

test("several concurrent waiters all wake on one completion", async () => {
  const { apiKey, sessionId } = await activeSession(s)
  const pending: Array<Promise<Reply>> = []
  for (let i = 0; i < 5; i++) pending.push(getSession(s, apiKey, sessionId, WAIT(LONGEST)))
  await eventually(async () => (await waiters(s, sessionId)) === 5)
  const completed = await completeSession(s, apiKey, sessionId, { transcript: TRANSCRIPT })
  expect(completed.status).toBe(200)
  const replies = await Promise.all(pending)
  for (const reply of replies) {
    expect(reply.status).toBe(200)
    expect(reply.body.status).toBe("completed")
    expect(data(reply)).toEqual(data(completed))
  }
  expect(await waiters(s, sessionId)).toBe(0)
})

test("waiters on different sessions are independent", async () => {
  const a = await activeSession(s)
  const b = await activeSession(s)
  const { reply: onA } = await waitOn(a.apiKey, a.sessionId, LONGEST)
  const { reply: onB } = await waitOn(b.apiKey, b.sessionId, LONGEST)
  expect((await completeSession(s, b.apiKey, b.sessionId, { transcript: TRANSCRIPT })).status).toBe(200)
  const replyB = await onB
  expect(replyB.body.status).toBe("completed")
  expect(await waiters(s, a.sessionId)).toBe(1) // still waiting: B's completion did not wake it
  const completedA = await completeSession(s, a.apiKey, a.sessionId, { transcript: TRANSCRIPT })
  expect(completedA.status).toBe(200)
  const replyA = await onA
  expect(replyA.body.status).toBe("completed")
  expect(data(replyA)).toEqual(data(completedA))
})
