/**
 * Authenticated reads against the framework's ceiling, measured in the same run (this machine is
 * noisy): a minimal `HttpApi` server (one GET answering fixed JSON, on platform-bun, the project's own
 * dependencies) and Parley (embedded PostgreSQL, local upstreams, as the tests start it; logs at
 * Warning), each in its own process. Each is loaded in turn, interleaved over ROUNDS rounds, by `wrk`
 * (-t1 -c32) if installed, else by a bounded fetch loop; medians are compared.
 * Targets: GET /agents/:id ≥ 0.5 × minimal, /healthz ≥ 0.8 ×.
 * Run: npm run bench (or bun bench/auth-read.ts)
 */
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { Effect, Layer, Schema } from "effect"

const CONNECTIONS = 32
const SECONDS = 3
const ROUNDS = 3
/** Without wrk: requests per run of the fetch loop. */
const REQUESTS = 20_000

type Target = { url: string; headers: Record<string, string> }

/** The ceiling: one endpoint, no middleware, no database. */
const serveMinimal = async () => {
  const api = HttpApi.make("minimal").add(
    HttpApiGroup.make("items").add(
      HttpApiEndpoint.get("get", "/items/:id")
        .setPath(Schema.Struct({ id: Schema.String }))
        .addSuccess(Schema.Struct({ id: Schema.String, name: Schema.String })),
    ),
  )
  const items = HttpApiBuilder.group(api, "items", (handlers) =>
    handlers.handle("get", ({ path }) => Effect.succeed({ id: path.id, name: "fixed" })),
  )
  const port = Number(process.env.BENCH_PORT)
  const server = HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.api(api).pipe(Layer.provide(items))),
    Layer.provide(BunHttpServer.layer({ port, hostname: "127.0.0.1" })),
  )
  Effect.runFork(Layer.launch(server))
  return { base: `http://127.0.0.1:${port}`, paths: { read: "/items/1", healthz: "/items/1" }, headers: {} }
}

const serveParley = async () => {
  const { startServer } = await import("../test/support/server.ts")
  // the per-key rate limit is on the path measured, but must not answer this load with 429
  const server = await startServer({ requestRatePerKey: 1_000_000 })
  const { apiKey } = await server.newTenant()
  const res = await server.fetchRaw("/api/v1/voice/agents", {
    method: "POST",
    apiKey,
    body: JSON.stringify({
      name: "Bench",
      instructions: "Ask one question.",
      output_schema: { n: "number" },
    }),
  })
  const { agent_id } = ((await res.json()) as { data: { agent_id: string } }).data
  return {
    base: server.baseUrl,
    paths: { read: `/api/v1/voice/agents/${agent_id}`, healthz: "/healthz" },
    headers: { authorization: `Bearer ${apiKey}` },
  }
}

/** The child: serves, prints where, and lives until its parent closes stdin. */
if (process.argv[2] === "--serve") {
  const served = await (process.argv[3] === "minimal" ? serveMinimal() : serveParley())
  console.log(JSON.stringify(served))
  for await (const _ of Bun.stdin.stream());
  process.exit(0)
}

const spawn = async (kind: "minimal" | "parley") => {
  const port = await freePort()
  const child = Bun.spawn(["bun", import.meta.path, "--serve", kind], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
    env: { ...process.env, BENCH_PORT: String(port) },
  })
  const reader = child.stdout.getReader()
  let text = ""
  while (!text.includes("\n")) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`${kind} server exited`)
    text += new TextDecoder().decode(value)
  }
  const served = JSON.parse(text.slice(0, text.indexOf("\n"))) as {
    base: string
    paths: { read: string; healthz: string }
    headers: Record<string, string>
  }
  return { ...served, stop: () => child.stdin.end() }
}

const freePort = async () => {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
  const port = probe.port
  await probe.stop(true)
  return port
}

const hasWrk = Bun.which("wrk") !== null

/** Requests per second with CONNECTIONS concurrent connections; every answer must be a 200. */
const load = async ({ url, headers }: Target): Promise<number> => {
  if (hasWrk) {
    const args = ["wrk", "-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, url]
    for (const [name, value] of Object.entries(headers)) args.push("-H", `${name}: ${value}`)
    const out = await new Response(Bun.spawn(args, { stdout: "pipe" }).stdout).text()
    if (/Non-2xx/.test(out)) throw new Error(`non-2xx answers from ${url}:\n${out}`)
    return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  }
  const next = { sent: 0 }
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next.sent++ < REQUESTS) {
        const res = await fetch(url, { headers })
        await res.arrayBuffer()
        if (res.status !== 200) throw new Error(`${res.status} from ${url}`)
      }
    }),
  )
  return REQUESTS / ((performance.now() - started) / 1000)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const minimal = await spawn("minimal")
const parley = await spawn("parley")
try {
  const target = (s: typeof minimal, path: "read" | "healthz") => ({
    url: s.base + s.paths[path],
    headers: s.headers,
  })
  // warm up (JIT, pool, caches)
  for (const t of [target(minimal, "read"), target(parley, "read"), target(parley, "healthz")]) await load(t)
  const runs = { minimal: [] as number[], read: [] as number[], healthz: [] as number[] }
  for (let i = 0; i < ROUNDS; i++) {
    runs.minimal.push(await load(target(minimal, "read")))
    runs.read.push(await load(target(parley, "read")))
    runs.healthz.push(await load(target(parley, "healthz")))
  }
  const base = median(runs.minimal)
  const show = (xs: ReadonlyArray<number>) => xs.map((x) => x.toFixed(0)).join(", ")
  console.log(
    `authenticated reads, ${hasWrk ? `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s` : `${REQUESTS} fetches over ${CONNECTIONS} connections`}, median of ${ROUNDS} interleaved runs`,
  )
  console.log(`  minimal HttpApi GET      ${base.toFixed(0)} req/s (${show(runs.minimal)})`)
  console.log(`  Parley GET /agents/:id   ${median(runs.read).toFixed(0)} req/s (${show(runs.read)})`)
  console.log(`  Parley GET /healthz      ${median(runs.healthz).toFixed(0)} req/s (${show(runs.healthz)})`)
  console.log(`  ratio /agents/:id / minimal = ${(median(runs.read) / base).toFixed(2)} (target ≥ 0.5)`)
  console.log(`  ratio /healthz / minimal = ${(median(runs.healthz) / base).toFixed(2)} (target ≥ 0.8)`)
} finally {
  minimal.stop()
  parley.stop()
}
