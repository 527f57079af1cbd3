/** Parley's Bun server alone: pending replies, client aborts, the client's address, HEAD. */
import { afterAll, expect, test } from "bun:test"
import { HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import * as BunServer from "../src/Http/BunServer.ts"
import { eventually } from "./support/wait.ts"

const seen = {
  hanging: 0,
  interrupted: 0,
  /** Requests to /park: their pending replies, answered by the test after their fiber ended. */
  parked: [] as Array<BunServer.PendingReply>,
  gone: 0,
}

const app = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const path = new URL(request.url, "http://localhost").pathname
  if (path === "/address")
    return HttpServerResponse.text(Option.getOrElse(BunServer.clientAddress(request), () => "none"))
  if (path === "/hang") {
    seen.hanging += 1
    // (HttpApp.toHandled runs a request uninterruptibly; routers make their handlers interruptible)
    return yield* Effect.onInterrupt(Effect.interruptible(Effect.never), () =>
      Effect.sync(() => {
        seen.interrupted += 1
      }),
    )
  }
  if (path === "/park") {
    const reply = BunServer.pendingReply(request)
    if (reply === undefined) return HttpServerResponse.text("no pending reply", { status: 500 })
    reply.parked = {
      clientGone: () => {
        seen.gone += 1
      },
    }
    seen.parked.push(reply)
    return HttpServerResponse.text("nobody gets this")
  }
  return HttpServerResponse.text("a body")
})

/** Like a proxy-headers middleware: the request the app and the response see is a modified copy. */
const modifying = (self: typeof app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    new URL(request.url, "http://localhost").pathname === "/forwarded"
      ? Effect.provideService(
          self,
          HttpServerRequest.HttpServerRequest,
          request.modify({ url: "/address", remoteAddress: "203.0.113.7" }),
        )
      : self,
  )

const runtime = ManagedRuntime.make(
  HttpServer.serve(app, modifying).pipe(
    Layer.provideMerge(BunServer.layer({ port: 0, hostname: "127.0.0.1", idleTimeout: 30 })),
  ),
)
const base = await runtime.runPromise(
  Effect.map(HttpServer.HttpServer, (s) =>
    s.address._tag === "TcpAddress" ? `http://127.0.0.1:${s.address.port}` : "",
  ),
)
afterAll(() => runtime.dispose())

test("a request gets its response; HEAD gets the headers only", async () => {
  const get = await fetch(`${base}/`)
  expect(get.status).toBe(200)
  expect(await get.text()).toBe("a body")
  const head = await fetch(`${base}/`, { method: "HEAD" })
  expect(head.status).toBe(200)
  expect(await head.text()).toBe("")
})

test("the client's address is Bun's, looked up when asked for", async () => {
  const res = await fetch(`${base}/address`)
  expect(await res.text()).toBe("127.0.0.1")
})

test("a request a middleware replaced with a modified copy still gets its answer", async () => {
  const res = await fetch(`${base}/forwarded`)
  expect(res.status).toBe(200)
  expect(await res.text()).toBe("203.0.113.7")
})

test("a client that goes away interrupts its request's fiber", async () => {
  const controller = new AbortController()
  const pending = fetch(`${base}/hang`, { signal: controller.signal }).catch((e: Error) => e.name)
  await eventually(() => seen.hanging === 1)
  controller.abort()
  expect(await pending).toBe("AbortError")
  await eventually(() => seen.interrupted === 1)
})

test("a parked request is answered after its fiber ended, once; a parked client's abort is reported", async () => {
  const first = fetch(`${base}/park`)
  await eventually(() => seen.parked.length === 1)
  const reply = seen.parked[0] as BunServer.PendingReply
  // its fiber ended (its own response went nowhere) and is not kept
  await eventually(() => reply.fiber === undefined)
  expect(reply.answered).toBe(false)
  expect(reply.send(new Response("later", { status: 202 }))).toBe(true)
  expect(reply.send(new Response("twice"))).toBe(false)
  const answered = await first
  expect(answered.status).toBe(202)
  expect(await answered.text()).toBe("later")

  const controller = new AbortController()
  const second = fetch(`${base}/park`, { signal: controller.signal }).catch((e: Error) => e.name)
  await eventually(() => seen.parked.length === 2)
  controller.abort()
  expect(await second).toBe("AbortError")
  await eventually(() => seen.gone === 1)
})
