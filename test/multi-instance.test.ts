/** Two instances on one database behave as one service: a completion on one wakes a waiter on the other. */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { startServer, type TestServer } from "./support/server.ts"
import {
  activeSession,
  completeSession,
  data,
  eventually,
  getSession,
  listening,
  TRANSCRIPT,
  waiters,
} from "./support/sessions.ts"

let a: TestServer
let b: TestServer
beforeAll(async () => {
  ;[a, b] = await Promise.all([startServer(), startServer()])
})
afterAll(() => Promise.all([a.dispose(), b.dispose()]))

test("a long-poll on instance B returns as soon as the session is completed on instance A", async () => {
  const { apiKey, sessionId } = await activeSession(a)
  // B hears A's NOTIFY once its LISTEN is active.
  await eventually(() => listening(b))
  // A wait that outlasts the test's timeout: only a wake-up from A can answer it.
  const waiting = getSession(b, apiKey, sessionId, "?wait_for_completion=true&timeout_seconds=120")
  // B is waiting before A completes: B cannot just read the completed row.
  await eventually(async () => (await waiters(b, sessionId)) === 1)
  const completed = await completeSession(a, apiKey, sessionId, {
    transcript: TRANSCRIPT,
    duration_seconds: 9,
  })
  expect(completed.status).toBe(200)
  const woke = await waiting
  expect(woke.status).toBe(200)
  expect(woke.body.status).toBe("completed")
  expect(data(woke)).toEqual(data(completed))
})

test("of concurrent completes spread over both instances one claims; its transcript's retries share its outcome", async () => {
  const { apiKey, sessionId } = await activeSession(a)
  const other = [{ role: "user", text: "another call altogether" }]
  const replies = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      completeSession(i % 2 === 0 ? a : b, apiKey, sessionId, { transcript: i < 3 ? TRANSCRIPT : other }),
    ),
  )
  // whichever transcript claimed the session, the completes sending it get 200 and the same session
  const claimedFirst = replies[0].status === 200
  expect(replies.map((r) => r.status)).toEqual(replies.map((_, i) => (i < 3 === claimedFirst ? 200 : 409)))
  const won = replies.filter((r) => r.status === 200).map((r) => JSON.stringify(data(r)))
  expect(new Set(won).size).toBe(1)
})
