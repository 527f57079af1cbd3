/**
 * A webhook receiver started with Bun.serve, behind a TCP forwarder (support/proxy.ts) so that it can
 * also cut a connection without answering. Each request takes the next scripted behaviour (then
 * `ok`); every request is recorded, with whether it was acknowledged.
 */
import { proxy } from "./proxy.ts"

export type Behaviour = "ok" | "fail" | "hang" | "close" | "hold"

export interface Received {
  readonly headers: Record<string, string>
  readonly body: string
  readonly type: string
  readonly sessionId: string
  readonly behaviour: Behaviour
}

export const startReceiver = async (script: Array<Behaviour> = []) => {
  const received: Array<Received> = []
  const pending: Array<() => void> = []
  let forwarder: Awaited<ReturnType<typeof proxy>> | undefined
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    // a held or hanging request must outlive the sender's timeout
    idleTimeout: 0,
    async fetch(request) {
      const body = await request.text()
      const behaviour = script.shift() ?? "ok"
      const parsed = JSON.parse(body) as { type: string; data: { session_id: string } }
      received.push({
        headers: Object.fromEntries(request.headers),
        body,
        type: parsed.type,
        sessionId: parsed.data.session_id,
        behaviour,
      })
      if (behaviour === "fail") return new Response("receiver is down", { status: 500 })
      if (behaviour === "close") {
        // every connection through the forwarder is dropped: the sender sees no answer at all
        forwarder?.refuse()
        forwarder?.restore()
        return new Promise<Response>(() => {})
      }
      if (behaviour === "hang") return new Promise<Response>(() => {})
      if (behaviour === "hold")
        return new Promise<Response>((resolve) => pending.push(() => resolve(new Response("ok"))))
      return new Response("ok")
    },
  })
  forwarder = await proxy(server.port as number)
  return {
    url: `http://127.0.0.1:${forwarder.port}/hooks`,
    received,
    /** Requests answered 2xx (what the sender counts as delivered). */
    acknowledged: () => received.filter((r) => r.behaviour === "ok"),
    /** Answers the held requests. */
    release: () => {
      for (const answer of pending.splice(0)) answer()
    },
    script,
    stop: () => {
      forwarder?.close()
      server.stop(true)
    },
  }
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>
