import { afterAll, beforeAll, expect, test } from "bun:test"
import { startServer, type TestServer } from "./support/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server.dispose())

test("smoke", async () => {
  const { apiKey } = await server.newTenant()
  const res = await server.fetchRaw("/api/v1/voice/agents", {
    method: "POST",
    apiKey,
    body: JSON.stringify({ name: " Sales ", instructions: "Be nice" }),
  })
  console.log(res.status, res.headers.get("x-request-id"), await res.text())
  const bad = await server.fetchRaw("/api/v1/voice/agents", { method: "POST", apiKey, body: "{bad" })
  console.log(bad.status, await bad.text())
  const bad2 = await server.fetchRaw("/api/v1/voice/agents", {
    method: "POST",
    apiKey,
    body: JSON.stringify({ name: "", instructions: "x", foo: 1, behaviors: { tone: "x" } }),
  })
  console.log(bad2.status, await bad2.text())
  const r404 = await server.fetchRaw("/nope", { method: "GET" })
  console.log(r404.status, await r404.text())
  const r405 = await server.fetchRaw("/api/v1/voice/agents", { method: "PUT", apiKey })
  console.log(r405.status, await r405.text())
  const noauth = await server.fetchRaw("/api/v1/voice/agents", { method: "GET" })
  console.log(noauth.status, await noauth.text())
  const badid = await server.fetchRaw("/api/v1/voice/agents/xyz", { method: "GET", apiKey })
  console.log(badid.status, await badid.text())
  const list = await server.fetchRaw("/api/v1/voice/agents?limit=0", { method: "GET", apiKey })
  console.log(list.status, await list.text())
  const list2 = await server.fetchRaw("/api/v1/voice/agents", { method: "GET", apiKey })
  console.log(list2.status, await list2.text())
  const ct = await server.fetchRaw("/api/v1/voice/agents", {
    method: "POST",
    apiKey,
    body: "a=b",
    headers: { "content-type": "text/plain" },
  })
  console.log(ct.status, await ct.text())
  const oa = await server.fetchRaw("/openapi.json")
  console.log(oa.status, (await oa.text()).slice(0, 300))
  const docs = await server.fetchRaw("/docs")
  console.log(docs.status, (await docs.text()).length)
  const h = await server.fetchRaw("/readyz")
  console.log(h.status, await h.text())
  expect(res.status).toBe(200)
})
