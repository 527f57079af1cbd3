// The README's client example, run by test/client.test.ts under Node against a test server:
// create an agent, start a session, wait for its result while the call's client completes it.
import { makeClient, run } from "parley/client"

const parley = makeClient({ baseUrl: process.env.PARLEY_URL, apiKey: process.env.PARLEY_API_KEY })

const agent = await run(
  parley.agents.create({
    payload: {
      name: "Sales Qualifier",
      instructions: "You are a friendly sales assistant.",
      questions: [{ key: "seats", ask: "How many seats do you need?", type: "number" }],
      output_schema: { seats: "number" },
    },
  }),
)
const started = await run(
  parley.sessions.start({
    payload: { agent_id: agent.data.agent_id, participant: { identity: "user_1", name: "Alice" } },
  }),
)
const id = started.data.session_id
// started.data.connection (LiveKit room token, Gemini Live token) goes to the browser or phone client.

/** Long-polls until the session has its outcome (each poll waits up to 60 s). */
const result = async () => {
  for (;;) {
    const { data } = await run(
      parley.sessions.get({ path: { id }, urlParams: { wait_for_completion: true, timeout_seconds: 60 } }),
    )
    if (data.status !== "active" && data.status !== "completing") return data
  }
}
const waiting = result()

// The call ends: its client posts the transcript (here, this script does).
await run(
  parley.sessions.complete({
    path: { id },
    payload: {
      transcript: [
        { role: "agent", text: "How many seats do you need?" },
        { role: "user", text: "About 25 seats." },
      ],
    },
  }),
)
const session = await waiting
console.log(JSON.stringify({ status: session.status, results: session.results }))
