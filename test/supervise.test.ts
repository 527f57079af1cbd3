/**
 * The embedded PostgreSQL of a real `bun src/main.ts` (no DATABASE_URL) is SIGKILLed: the server
 * restarts it on the same data directory and port, with backoff while it cannot, answering 503
 * meanwhile; the data is kept, and SIGTERM still stops the restarted cluster.
 */
import { expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer, type Server } from "node:net"
import { join } from "node:path"
import { Effect } from "effect"
import { stopEmbeddedPostgres } from "../src/Sql/EmbeddedPostgres.ts"
import { clusterProcesses, isRunning, postmasterOf } from "./support/postgres-processes.ts"
import { eventually } from "./support/wait.ts"

const freePort = () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  probe.stop(true)
  return port
}

/** Listens on 127.0.0.1:`port` once it is free (for as long as it takes); connections are reset. */
const holdPort = async (port: number): Promise<Server> => {
  for (;;) {
    const server = createServer((socket) => socket.destroy())
    const bound = await new Promise<boolean>((done) => {
      server.once("error", () => done(false))
      server.listen(port, "127.0.0.1", () => done(true))
    })
    if (bound) return server
    await Bun.sleep(5)
  }
}

const expectUnavailable = async (res: Response) => {
  expect(res.status).toBe(503)
  const body = (await res.json()) as { error: Record<string, unknown> }
  expect(body.error).toMatchObject({ type: "api_error", code: "service_unavailable" })
  expect(body.error.request_id).toBe(res.headers.get("x-request-id") as string)
}

test("a killed embedded PostgreSQL is restarted with backoff; 503 meanwhile, data kept", async () => {
  const dataDir = await mkdtemp("/tmp/parley-supervise-")
  const pgDir = join(dataDir, "pg")
  const { DATABASE_URL: _, ...inherited } = process.env
  const child = Bun.spawn([process.execPath, "src/main.ts"], {
    cwd: join(import.meta.dir, ".."),
    env: { ...inherited, DATA_DIR: dataDir, PORT: String(freePort()), HOST: "127.0.0.1", LOG_FORMAT: "json" },
    stdout: "pipe",
    stderr: "pipe",
  })
  let output = ""
  const decoder = new TextDecoder()
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk)
  }
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)])
  let held: Server | undefined
  try {
    // the banner names the address and the key bootstrapped on this first start
    await eventually(() => /API key\s+pk_\S+/.test(output))
    const base = /API\s+(http:\/\/\S+)\/api\/v1\/voice/.exec(output)![1]
    const apiKey = /API key\s+(pk_\S+)/.exec(output)![1]
    const call = (path: string, init: RequestInit = {}) =>
      fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      })
    const agents = "/api/v1/voice/agents"
    const created = await call(agents, {
      method: "POST",
      body: JSON.stringify({ name: "kept", instructions: "x" }),
    })
    expect(created.status).toBe(200)

    const killed = postmasterOf(pgDir)
    process.kill(killed.pid, "SIGSTOP") // stopped, it forks no backend the scan could miss
    const processes = clusterProcesses(killed.pid)
    process.kill(killed.pid, "SIGKILL")
    // Holding its port keeps the restart failing, so the outage lasts until the test ends it.
    held = await holdPort(killed.port)
    await eventually(() => output.includes("did not restart; retrying"))
    expect(output).toContain(`embedded PostgreSQL (pid ${killed.pid}) exited`)
    await eventually(() => processes.every((pid) => !isRunning(pid))) // no backend of it answers any more

    await expectUnavailable(await call(agents))
    await expectUnavailable(
      await call(agents, { method: "POST", body: JSON.stringify({ name: "x", instructions: "y" }) }),
    )
    await expectUnavailable(await fetch(`${base}/readyz`))
    expect((await fetch(`${base}/healthz`)).status).toBe(200)

    await new Promise((done) => held!.close(done))
    held = undefined
    await eventually(async () => (await call(agents)).status === 200)
    const listed = (await (await call(agents)).json()) as { data: { data: Array<{ name: string }> } }
    expect(listed.data.data.map((a) => a.name)).toEqual(["kept"])
    expect((await fetch(`${base}/readyz`)).status).toBe(200)
    const restarted = postmasterOf(pgDir)
    expect(restarted.port).toBe(killed.port)
    expect(restarted.pid).not.toBe(killed.pid)
    await eventually(() => output.includes(`embedded PostgreSQL running again (pid ${restarted.pid})`))

    // shutdown stops the restarted cluster, with no restart racing it
    child.kill("SIGTERM")
    expect(await child.exited).toBe(0)
    expect(isRunning(restarted.pid)).toBe(false)
    expect(existsSync(join(pgDir, "postmaster.pid"))).toBe(false)
  } finally {
    held?.close()
    child.kill("SIGKILL")
    await Promise.all([child.exited, collected])
    await Effect.runPromise(stopEmbeddedPostgres(pgDir)) // only if an assertion failed midway
    await rm(dataDir, { recursive: true, force: true })
  }
})
