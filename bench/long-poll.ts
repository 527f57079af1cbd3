/**
 * Long-polls, against baselines from the same run (this machine is noisy):
 * - memory: RSS per pending long-poll for 2,000 and 10,000 waiters, against a minimal `HttpApi`
 *   server (same dependencies) whose handler waits on `Effect.never` (target: ratio ≤ 1.0), and the
 *   database queries made while they wait (target 0).
 * - one wake, one read: 5,000 waiters on one session; when it completes, their wake-up latency
 *   (p99 ≤ 200 ms, and as a ratio to the complete's own latency), the queries about that session
 *   (O(1)), and unrelated requests from another organization during the wake (all must succeed).
 * Each server runs in a child process (its RSS is read from /proc); the clients are raw loopback
 * sockets in this process. Bounded: at most 10,000 connections, every wait ends within 120 s.
 * Run: bun bench/long-poll.ts (part of npm run bench); `bun bench/long-poll.ts memory` for memory only.
 */

import { heapStats } from "bun:jsc"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpServer } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { Effect, Layer, ManagedRuntime } from "effect"
import pg from "pg"
import { ApiKeys } from "../src/Auth/ApiKeys.ts"
import { CompletionHub } from "../src/Sessions/CompletionHub.ts"
import { startServer } from "../test/support/server.ts"

const SESSIONS = 100
const KEYS = 20 // waiters spread over keys, below the per-key long-poll cap
const HOT_WAITERS = 5_000

const rss = async () => {
  const status = await Bun.file("/proc/self/status").text()
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) * 1024
}
/** JavaScript heap in use (after a full collection: what the pending requests keep alive). */
const heap = () => heapStats().heapSize

/** A child answers one JSON line per command line read on stdin. */
const serveCommands = async (handle: (command: string) => Promise<unknown>) => {
  for await (const line of console) console.log(JSON.stringify(await handle(line.trim())))
  process.exit(0) // stdin closed: the bench is gone, whatever happened to it
}

/** The baseline: one GET endpoint whose handler never answers. */
const serveMinimal = async () => {
  const Minimal = HttpApi.make("minimal").add(
    HttpApiGroup.make("wait").add(HttpApiEndpoint.get("wait", "/wait")),
  )
  const counter = { pending: 0 }
  const handlers = HttpApiBuilder.group(Minimal, "wait", (h) =>
    h.handle("wait", () =>
      Effect.zipRight(
        Effect.sync(() => void counter.pending++),
        Effect.never,
      ),
    ),
  )
  const runtime = ManagedRuntime.make(
    HttpApiBuilder.serve().pipe(
      Layer.provide(HttpApiBuilder.api(Minimal).pipe(Layer.provide(handlers))),
      Layer.provideMerge(BunHttpServer.layer({ port: 0, hostname: "127.0.0.1", idleTimeout: 150 })),
    ),
  )
  const address = await runtime.runPromise(Effect.map(HttpServer.HttpServer, (s) => s.address))
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  console.log(JSON.stringify({ url: `http://127.0.0.1:${address.port}`, path: "/wait" }))
  await serveCommands(async (command) => {
    if (command === "gc") Bun.gc(true)
    return { rss: await rss(), heap: heap(), waiting: counter.pending }
  })
}

/** Parley as the tests start it, with its database queries counted at the driver. */
const serveParley = async () => {
  const queries = { all: 0, sessions: 0, hot: 0, hotId: "" }
  const query = pg.Client.prototype.query as (...args: Array<unknown>) => unknown
  pg.Client.prototype.query = function (this: pg.Client, ...args: Array<unknown>) {
    queries.all += 1
    // the table a waiter would read (the expiry sweep's updates too); the rest is background work
    if (/\bsessions\b/.test(JSON.stringify(args[0] ?? ""))) queries.sessions += 1
    if (queries.hotId !== "" && JSON.stringify(args[0] ?? "").includes(queries.hotId)) queries.hot += 1
    if (queries.hotId !== "" && JSON.stringify(args[1] ?? "").includes(queries.hotId)) queries.hot += 1
    return query.apply(this, args)
  } as typeof pg.Client.prototype.query
  const server = await startServer()
  const { orgId } = await server.newTenant()
  const keys = await server.run(
    Effect.forEach(Array.from({ length: KEYS }), (_, i) =>
      Effect.map(
        Effect.flatMap(ApiKeys, (k) => k.createKey(orgId, `bench-${i}`)),
        (key) => key.api_key,
      ),
    ),
  )
  const client = await server.client(keys[0])
  const agent = await Effect.runPromise(
    client.agents.create({
      payload: { name: "Bench", instructions: "Ask.", output_schema: { budget: "number" } },
    }),
  )
  const start = () =>
    Effect.runPromise(
      client.sessions.start({ payload: { agent_id: agent.data.agent_id, participant: { identity: "b" } } }),
    ).then((s) => s.data.session_id)
  const sessions: Array<string> = []
  for (let i = 0; i < SESSIONS; i++) sessions.push(await start())
  const other = await server.newTenant()
  const otherClient = await server.client(other.apiKey)
  const otherAgent = await Effect.runPromise(
    otherClient.agents.create({ payload: { name: "Other", instructions: "Ask." } }),
  )
  const unrelated = await Effect.runPromise(
    otherClient.sessions.start({
      payload: { agent_id: otherAgent.data.agent_id, participant: { identity: "o" } },
    }),
  ).then((s) => s.data.session_id)
  queries.hotId = sessions[0] ?? ""
  console.log(JSON.stringify({ url: server.baseUrl, keys, sessions, unrelated, otherKey: other.apiKey }))
  const waiting = () =>
    server.run(
      Effect.flatMap(CompletionHub, (hub) =>
        Effect.reduce(sessions, 0, (n, id) => Effect.map(hub.waiting(id), (k) => n + k)),
      ),
    )
  await serveCommands(async (command) => {
    if (command === "gc") Bun.gc(true)
    return {
      rss: await rss(),
      heap: heap(),
      waiting: await waiting(),
      queries: queries.all,
      sessionQueries: queries.sessions,
      hot: queries.hot,
    }
  })
}

// ---- the client side ------------------------------------------------------------------------

interface Child {
  readonly info: Record<string, unknown>
  readonly ask: (command: string) => Promise<{
    rss: number
    heap: number
    waiting: number
    queries: number
    sessionQueries: number
    hot: number
  }>
  readonly stop: () => void
}

const spawn = async (role: "parley" | "minimal"): Promise<Child> => {
  const proc = Bun.spawn([process.execPath, import.meta.path, role], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  })
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  const buffer = { text: "" }
  const line = async (): Promise<string> => {
    while (!buffer.text.includes("\n")) {
      const chunk = await reader.read()
      if (chunk.done) throw new Error(`${role} server exited`)
      buffer.text += decoder.decode(chunk.value)
    }
    const at = buffer.text.indexOf("\n")
    const first = buffer.text.slice(0, at)
    buffer.text = buffer.text.slice(at + 1)
    return first.startsWith("{") ? first : line()
  }
  const info = JSON.parse(await line())
  return {
    info,
    ask: async (command) => {
      proc.stdin.write(`${command}\n`)
      proc.stdin.flush()
      return JSON.parse(await line())
    },
    stop: () => proc.kill(),
  }
}

interface Poll {
  readonly answered: Promise<{ status: number; at: number }>
  readonly close: () => void
}

/** One GET on its own connection; resolves with its status and the moment its answer began. */
const poll = (url: string, path: string, apiKey: string): Promise<Poll> => {
  const { hostname, port } = new URL(url)
  const answered = Promise.withResolvers<{ status: number; at: number }>()
  return new Promise((connected, failed) => {
    Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open(socket) {
          socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${apiKey}\r\n\r\n`)
          connected({ answered: answered.promise, close: () => socket.end() })
        },
        data(_socket, data) {
          const status = Number(/^HTTP\/1\.1 (\d+)/.exec(data.toString("latin1"))?.[1] ?? 0)
          answered.resolve({ status, at: performance.now() })
        },
        close() {
          answered.resolve({ status: 0, at: performance.now() })
        },
        error(_socket, error) {
          failed(error)
        },
        connectError(_socket, error) {
          failed(error)
        },
      },
    }).catch(failed)
  })
}

const openPolls = async (n: number, url: string, path: (i: number) => string, key: (i: number) => string) => {
  const polls: Array<Poll> = []
  for (let i = 0; i < n; i += 250)
    polls.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(250, n - i) }, (_, j) => poll(url, path(i + j), key(i + j))),
      )),
    )
  return polls
}

const until = async (check: () => Promise<boolean>, seconds = 60) => {
  const end = performance.now() + seconds * 1000
  while (!(await check())) {
    if (performance.now() > end) throw new Error("bench: condition not reached in time")
    await Bun.sleep(50)
  }
}

const WAIT = "?wait_for_completion=true&timeout_seconds=120"

/** Waits until `n` requests are registered and the server's database queries have stopped. */
const settled = async (child: Child, n: number) => {
  await until(async () => (await child.ask("stats")).waiting >= n)
  const last = { queries: -1 }
  await until(async () => {
    const { queries } = await child.ask("stats")
    if (queries === last.queries) return true
    last.queries = queries
    await Bun.sleep(250)
    return false
  })
}

/** RSS per pending request (bytes), and the queries made while they were pending. */
const memory = async (role: "parley" | "minimal", n: number) => {
  const child = await spawn(role)
  const info = child.info as { url: string; path?: string; keys?: Array<string>; sessions?: Array<string> }
  const path = (i: number) => info.path ?? `/api/v1/voice/sessions/${info.sessions?.[i % SESSIONS]}${WAIT}`
  const key = (i: number) => info.keys?.[i % KEYS] ?? "none"
  // Warm up the request path, then let it go.
  const warm = await openPolls(200, info.url, path, key)
  await until(async () => (await child.ask("stats")).waiting >= 200)
  for (const p of warm) p.close()
  if (role === "parley") await until(async () => (await child.ask("stats")).waiting === 0)
  await Bun.sleep(500)
  const before = await child.ask("gc")
  const base = role === "minimal" ? before.waiting : 0
  const polls = await openPolls(n, info.url, path, key)
  await settled(child, base + n)
  const waiting = await child.ask("gc")
  await Bun.sleep(2000) // nothing should happen meanwhile
  const after = await child.ask("gc")
  const early = (await Promise.all(polls.map((p) => Promise.race([p.answered, Bun.sleep(0)])))).filter(
    (x) => x !== undefined,
  ).length
  for (const p of polls) p.close()
  child.stop()
  return {
    perWaiter: (after.rss - before.rss) / n,
    heapPerWaiter: (after.heap - before.heap) / n,
    queriesWhileWaiting: role === "parley" ? after.queries - waiting.queries : 0,
    sessionQueriesWhileWaiting: role === "parley" ? after.sessionQueries - waiting.sessionQueries : 0,
    early,
  }
}

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN
}

/** 5,000 waiters on one session, woken by its completion while another organization keeps reading. */
const wake = async () => {
  const child = await spawn("parley")
  const info = child.info as {
    url: string
    keys: Array<string>
    sessions: Array<string>
    unrelated: string
    otherKey: string
  }
  const hot = info.sessions[0]
  const polls = await openPolls(
    HOT_WAITERS,
    info.url,
    () => `/api/v1/voice/sessions/${hot}${WAIT}`,
    (i) => info.keys[i % KEYS] ?? "",
  )
  await settled(child, HOT_WAITERS)
  const before = await child.ask("stats")
  // Unrelated reads from another organization, 8 at a time, for as long as the wake-up lasts.
  const unrelated = { ok: 0, failed: new Map<number, number>(), running: true }
  const reader = async () => {
    while (unrelated.running) {
      const reply = await fetch(`${info.url}/api/v1/voice/sessions/${info.unrelated}`, {
        headers: { authorization: `Bearer ${info.otherKey}` },
      })
      await reply.arrayBuffer()
      if (reply.status === 200) unrelated.ok += 1
      else unrelated.failed.set(reply.status, (unrelated.failed.get(reply.status) ?? 0) + 1)
    }
  }
  const readers = Array.from({ length: 8 }, reader)
  const sent = performance.now()
  const completed = await fetch(`${info.url}/api/v1/voice/sessions/${hot}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${info.keys[0]}`, "content-type": "application/json" },
    body: JSON.stringify({ transcript: [{ role: "user", text: "Budget is 900." }] }),
  })
  await completed.arrayBuffer()
  const completedAt = performance.now()
  const answers = await Promise.all(polls.map((p) => p.answered))
  unrelated.running = false
  await Promise.all(readers)
  const after = await child.ask("stats")
  for (const p of polls) p.close()
  child.stop()
  const times = answers.map((a) => a.at).sort((a, b) => a - b)
  const first = times[0] ?? Number.NaN
  return {
    complete: completedAt - sent,
    completeStatus: completed.status,
    /** From the first waiter's answer (the wake-up) to the others': what the wake-up itself costs. */
    spread50: percentile(times, 50) - first,
    spread99: percentile(times, 99) - first,
    /** From sending the complete: includes the extraction and recording. */
    sent99: percentile(times, 99) - sent,
    /** From the complete's answer (the change is committed and published by then): the wake-up's cost. */
    woken50: percentile(times, 50) - completedAt,
    woken99: percentile(times, 99) - completedAt,
    notOk: answers.filter((a) => a.status !== 200).length,
    hotQueries: after.hot - before.hot,
    allQueries: after.queries - before.queries,
    unrelated,
  }
}

const main = async () => {
  const kib = (bytes: number) => (bytes / 1024).toFixed(1)
  console.log("long-poll memory: RSS per pending request (fresh server each)")
  for (const n of [2_000, 10_000]) {
    const minimal = await memory("minimal", n)
    const parley = await memory("parley", n)
    console.log(
      `  ${n} waiters: minimal HttpApi ${kib(minimal.perWaiter)} KiB, Parley ${kib(parley.perWaiter)} KiB` +
        ` → ratio ${(parley.perWaiter / minimal.perWaiter).toFixed(2)} (target ≤ 1.0);` +
        ` heap ${kib(minimal.heapPerWaiter)} KiB vs ${kib(parley.heapPerWaiter)} KiB` +
        ` (${(parley.heapPerWaiter / minimal.heapPerWaiter).toFixed(2)});` +
        ` queries on sessions while waiting ${parley.sessionQueriesWhileWaiting} (target 0; all queries` +
        ` ${parley.queriesWhileWaiting}, the webhook dispatcher's poll included); answered early ${parley.early}`,
    )
  }
  if (process.argv[2] === "memory") return
  const w = await wake()
  console.log(`one wake, one read: ${HOT_WAITERS} waiters on one session`)
  console.log(
    `  complete answered in ${w.complete.toFixed(1)} ms (status ${w.completeStatus}); waiters answered` +
      ` p99 ${w.sent99.toFixed(1)} ms after it was sent → ratio ${(w.sent99 / w.complete).toFixed(2)};` +
      ` after the complete's answer: p50 ${w.woken50.toFixed(1)} ms, p99 ${w.woken99.toFixed(1)} ms (target ≤ 200);` +
      ` from the first waiter's answer: p50 +${w.spread50.toFixed(1)} ms, p99 +${w.spread99.toFixed(1)} ms;` +
      ` non-200 answers ${w.notOk}`,
  )
  console.log(
    `  queries naming the session during the wake ${w.hotQueries} (claim, finish, notify, one shared re-read;` +
      ` target O(1)); all queries ${w.allQueries} (includes the unrelated reads)`,
  )
  console.log(
    `  unrelated requests during the wake: ${w.unrelated.ok} ok, failed ${JSON.stringify(Object.fromEntries(w.unrelated.failed))} (target none)`,
  )
}

const role = process.argv[2]
if (role === "parley") await serveParley()
else if (role === "minimal") await serveMinimal()
else {
  await main()
  process.exit(0)
}
