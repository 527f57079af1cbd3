/**
 * Startup on an existing data directory: process spawn → first 200 from /readyz, against a baseline
 * started in the same run (this machine is noisy): a bare Bun process that starts the same embedded
 * PostgreSQL cluster and then a Bun.serve answering /readyz — the floor any server on this cluster
 * pays. Measured for `bun src/main.ts` (the sources, as `npm run dev` runs them) and for `npm start`
 * (the minified bundle built at install, plus npm's own start-up and its freshness check).
 * Run: npm run bench
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"

const ROUNDS = 5
const root = join(import.meta.dir, "..")
const dataDir = mkdtempSync(join(tmpdir(), "parley-startup-"))
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const freePort = () => {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
  const port = server.port
  server.stop(true)
  return port
}

const baselineScript = `
import { Effect } from "effect"
import { startEmbeddedPostgres } from "./src/Sql/EmbeddedPostgres.ts"
await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  yield* startEmbeddedPostgres({ dir: process.env.DATA_DIR + "/pg" })
  const server = Bun.serve({ port: Number(process.env.PORT), fetch: () => Response.json({ status: "ready" }) })
  yield* Effect.async((resume) => { process.once("SIGTERM", () => { server.stop(true); resume(Effect.void) }) })
})))
`

/** npm runs the server in a shell: SIGTERM goes to the Bun process under them (Linux /proc). */
const serverPid = (pid: number): number => {
  try {
    if (readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("bun")) return pid
    const child = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0]
    return child ? serverPid(Number(child)) : pid
  } catch {
    return pid
  }
}

/** Milliseconds from spawn to the first 200 from /readyz; the process is stopped (SIGTERM) after. */
const startup = async (command: ReadonlyArray<string>) => {
  const port = freePort()
  const started = performance.now()
  const proc = Bun.spawn([...command], {
    cwd: root,
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_FORMAT: "json" },
    stdout: "ignore",
    stderr: "pipe",
  })
  let exited = false
  void proc.exited.then(() => {
    exited = true
  })
  let elapsed: number | undefined
  while (elapsed === undefined) {
    if (exited) throw new Error(`${command.join(" ")} exited: ${await new Response(proc.stderr).text()}`)
    if (performance.now() - started > 30_000) throw new Error(`${command.join(" ")}: not ready in 30 s`)
    const status = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (res) => res.status,
      () => 0,
    )
    if (status === 200) elapsed = performance.now() - started
    else await Bun.sleep(2)
  }
  process.kill(serverPid(proc.pid), "SIGTERM")
  await proc.exited
  return elapsed
}

const bun = process.execPath
try {
  await startup([bun, "src/main.ts"]) // initialises the data directory (cluster, database, key)
  const baseline: number[] = []
  const main: number[] = []
  const npm: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    baseline.push(await startup([bun, "-e", baselineScript]))
    main.push(await startup([bun, "src/main.ts"]))
    npm.push(await startup(["npm", "start", "--silent"]))
  }
  const [b, m, n] = [median(baseline), median(main), median(npm)]
  console.log(`startup to the first 200 from /readyz, existing data directory (median of ${ROUNDS})`)
  console.log(`  ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}`)
  console.log(`  baseline (Bun + the same embedded PostgreSQL start) ${b.toFixed(0)} ms`)
  console.log(`  bun src/main.ts (sources) ${m.toFixed(0)} ms = ${(m / b).toFixed(2)} × baseline`)
  console.log(
    `  npm start (bundle)        ${n.toFixed(0)} ms = ${(n / b).toFixed(2)} × baseline  (target ≤ 1000 ms: ${n <= 1000 ? "met" : "MISSED"})`,
  )
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}
