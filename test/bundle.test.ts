/**
 * What `npm start` runs: the server bundle (rebuilt by scripts/start.ts when a source is newer), on an
 * embedded PostgreSQL of its own. It serves, and SIGTERM drains it as it drains the sources (what a
 * drain answers is shutdown.test.ts's): the database outlives the drain, the exit is 0.
 */
import { expect, test } from "bun:test"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { eventually } from "./support/wait.ts"

const freePort = () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  probe.stop(true)
  return port
}

test("npm start's bundle serves, and SIGTERM exits 0 with its database up till the drain is done", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "parley-bundle-"))
  const port = freePort()
  const child = Bun.spawn([process.execPath, "--max-http-header-size=1048576", "scripts/start.ts"], {
    // its own embedded database, whatever this process was given
    env: {
      ...process.env,
      DATABASE_URL: undefined,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_FORMAT: "json",
    },
    stdout: "pipe",
    stderr: "pipe",
  })
  const base = `http://127.0.0.1:${port}`
  try {
    await eventually(() =>
      fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      ),
    )
    // the key file is written with the startup banner, right after the server is up
    const keyFile = join(dataDir, "local-api-key")
    await eventually(() => Bun.file(keyFile).exists())
    const apiKey = (await readFile(keyFile, "utf8")).trim()
    const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }
    const post = (path: string, body: unknown) =>
      fetch(`${base}${path}`, { method: "POST", headers, body: JSON.stringify(body) }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { data: Record<string, string> },
      }))
    const agent = await post("/api/v1/voice/agents", { name: "a", instructions: "b" })
    expect(agent.status).toBe(200)
    const session = await post("/api/v1/voice/sessions", {
      agent_id: agent.body.data.agent_id,
      participant: { identity: "u" },
    })
    expect(session.status).toBe(201)
    expect((await fetch(`${base}/docs`)).status).toBe(200)
    child.kill("SIGTERM")
    expect(await child.exited).toBe(0)
    const output = (await new Response(child.stdout).text()) + (await new Response(child.stderr).text())
    // the embedded database was not stopped under the drain (its exit hook is Parley's to remove)
    expect(output).not.toContain("listener lost")
    expect(output).not.toContain('"logLevel":"ERROR"')
    expect(output).not.toContain("sourcemap")
  } finally {
    child.kill("SIGKILL")
    await rm(dataDir, { recursive: true, force: true })
  }
})
