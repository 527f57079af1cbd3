/**
 * Session latency, measured against baselines taken in the same run (this machine is noisy):
 * - start: both upstreams delayed by DELAY ms; the target is ≈ the slower upstream, not their sum.
 * - long-poll wake: time from a complete's response to the waiter's response, against the
 *   complete's own latency (waking must cost far less than the work that caused it).
 * Run: npm run bench
 */
import { Effect } from "effect"
import { startServer } from "../test/support/server.ts"

const DELAY = 150
const ROUNDS = 15

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const time = async (f: () => Promise<unknown>) => {
  const t = performance.now()
  await f()
  return performance.now() - t
}

const server = await startServer()
const { apiKey } = await server.newTenant()
const client = await server.client(apiKey)
const agent = await Effect.runPromise(
  client.agents.create({
    payload: { name: "Bench", instructions: "Ask one question.", output_schema: { budget: "number" } },
  }),
)
const start = () =>
  Effect.runPromise(
    client.sessions.start({ payload: { agent_id: agent.data.agent_id, participant: { identity: "bench" } } }),
  )
await start() // warm up

// Baselines: each upstream alone, through the same local server and delay.
server.livekit.inject({ method: "CreateRoom", delayMs: DELAY })
server.gemini.inject({ method: "auth_tokens", delayMs: DELAY })
const roomAlone: number[] = []
const tokenAlone: number[] = []
const starts: number[] = []
for (let i = 0; i < ROUNDS; i++) {
  roomAlone.push(
    await time(() =>
      fetch(`${server.livekit.url}/twirp/livekit.RoomService/CreateRoom`, { method: "POST", body: "{}" }),
    ),
  )
  tokenAlone.push(
    await time(() => fetch(`${server.gemini.url}/v1alpha/auth_tokens`, { method: "POST", body: "{}" })),
  )
  starts.push(await time(start))
}
server.livekit.clear()
server.gemini.clear()

const slower = Math.max(median(roomAlone), median(tokenAlone))
const sum = median(roomAlone) + median(tokenAlone)
console.log(`session start with both upstreams delayed ${DELAY} ms (median of ${ROUNDS})`)
console.log(
  `  room alone ${median(roomAlone).toFixed(1)} ms, token alone ${median(tokenAlone).toFixed(1)} ms`,
)
console.log(`  start ${median(starts).toFixed(1)} ms`)
console.log(`  ratio start / slower upstream = ${(median(starts) / slower).toFixed(2)} (target ≤ 1.5)`)
console.log(`  ratio start / sum of upstreams = ${(median(starts) / sum).toFixed(2)} (target < 0.75)`)

const wakes: number[] = []
const completes: number[] = []
for (let i = 0; i < ROUNDS; i++) {
  const session = await start()
  const id = session.data.session_id
  let wokeAt = 0
  const waiter = Effect.runPromise(
    client.sessions.get({ path: { id }, urlParams: { wait_for_completion: true, timeout_seconds: 30 } }),
  ).then(() => {
    wokeAt = performance.now()
  })
  await Bun.sleep(20)
  const t = performance.now()
  await Effect.runPromise(
    client.sessions.complete({
      path: { id },
      payload: { transcript: [{ role: "user", text: "Budget is 900." }], duration_seconds: 5 },
    }),
  )
  const completedAt = performance.now()
  completes.push(completedAt - t)
  await waiter
  wakes.push(Math.max(0, wokeAt - completedAt))
}
console.log(`long-poll wake-up (median of ${ROUNDS})`)
console.log(
  `  complete ${median(completes).toFixed(1)} ms, waiter answered ${median(wakes).toFixed(1)} ms after it`,
)
console.log(`  ratio wake-up / complete = ${(median(wakes) / median(completes)).toFixed(2)} (target < 0.5)`)

await server.dispose()
process.exit(0)
