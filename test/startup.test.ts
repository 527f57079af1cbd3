/** The first minute: `GET /` leads a browser to the docs; a taken port is one line, not a stack. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startServer, type TestServer } from "./support/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server.dispose())

describe("startup", () => {
  test("GET / redirects to /docs", async () => {
    const res = await fetch(`${server.baseUrl}/`, { redirect: "manual" })
    expect(res.status).toBe(302)
    expect(res.headers.get("location")).toBe("/docs")
    const docs = await fetch(`${server.baseUrl}/`)
    expect(docs.status).toBe(200)
    expect(docs.headers.get("content-type")).toContain("text/html")
  })

  test("a port in use → one line on stderr, exit 1, before the database starts", async () => {
    const taken: Server = createServer()
    await new Promise<void>((done) => taken.listen(0, "0.0.0.0", done))
    const address = taken.address()
    if (typeof address !== "object" || address === null) throw new Error("expected a TCP address")
    const dataDir = mkdtempSync(join(tmpdir(), "parley-port-"))
    try {
      const { DATABASE_URL: _, HOST: __, ...inherited } = process.env
      const proc = Bun.spawn([process.execPath, "src/main.ts"], {
        cwd: join(import.meta.dir, ".."),
        env: { ...inherited, PORT: String(address.port), DATA_DIR: dataDir },
        stdout: "pipe",
        stderr: "pipe",
      })
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
      expect({ code, stderr }).toEqual({
        code: 1,
        stderr: `Startup failed: port ${address.port} on 0.0.0.0 is already in use (set PORT)\n`,
      })
      expect(existsSync(join(dataDir, "pg"))).toBe(false)
    } finally {
      taken.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
