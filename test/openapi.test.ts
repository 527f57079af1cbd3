/** /openapi.json: Redocly's `recommended` rules pass, and the properties generated clients rely on. */
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { OpenApi } from "@effect/platform"
import { Api } from "../src/Api.ts"

const ROOT = join(import.meta.dir, "..")
const spec = OpenApi.fromApi(Api) as unknown as {
  servers?: ReadonlyArray<{ url: string }>
  webhooks: Record<
    string,
    { post: Operation & { requestBody: { content: Record<string, { schema: unknown }> } } }
  >
  components: { schemas: Record<string, { properties: Record<string, unknown> }> }
  tags: ReadonlyArray<{ name: string; description?: string }>
  paths: Record<string, Record<string, Operation>>
}
interface Operation {
  operationId?: string
  summary?: string
  tags?: ReadonlyArray<string>
  parameters: ReadonlyArray<{ name: string; in: string; schema: { type?: string; format?: string } }>
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>
}
const operations = Object.entries(spec.paths).flatMap(([path, ops]) =>
  Object.entries(ops).map(([method, op]) => ({ at: `${method.toUpperCase()} ${path}`, op })),
)

const dir = mkdtempSync(join(tmpdir(), "parley-openapi-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Problem {
  readonly ruleId: string
  readonly severity: "error" | "warn"
  readonly message: string
  readonly location: ReadonlyArray<{ readonly pointer: string }>
}

describe("openapi", () => {
  test("passes Redocly's recommended rules (the only warning: no license is chosen yet)", async () => {
    const file = join(dir, "openapi.json")
    writeFileSync(file, JSON.stringify(spec))
    const proc = Bun.spawn(
      [join(ROOT, "node_modules/.bin/redocly"), "lint", "--extends", "recommended", "--format", "json", file],
      {
        cwd: dir,
        env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
        stdout: "pipe",
        stderr: "pipe",
      },
    )
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    const report = JSON.parse(stdout) as { problems: ReadonlyArray<Problem> }
    const problems = report.problems.map(
      (p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`,
    )
    expect(problems.filter((p) => !p.startsWith("warn info-license "))).toEqual([])
    expect(code).toBe(0)
  })

  test("servers, one consistently named and described tag per group, a summary and operationId per operation", () => {
    expect(spec.servers?.length).toBeGreaterThan(0)
    expect(spec.tags.map((t) => t.name)).toEqual([
      "Operations",
      "Voices",
      "Voice agents",
      "Voice sessions",
      "Webhooks",
      "Webhook endpoints",
      "Admin",
    ])
    for (const tag of spec.tags)
      expect({ tag: tag.name, described: !!tag.description }).toMatchObject({ described: true })
    const ids = operations.map(({ op }) => op.operationId)
    expect(new Set(ids).size).toBe(operations.length)
    for (const { at, op } of operations) {
      expect({ at, summary: typeof op.summary, operationId: typeof op.operationId }).toEqual({
        at,
        summary: "string",
        operationId: "string",
      })
      expect(spec.tags.map((t) => t.name)).toContain(op.tags?.[0] ?? "")
    }
  })

  test("the 404 of POST /sessions is voice_agent_not_found only; routing errors are in no operation", () => {
    const start = spec.paths["/api/v1/voice/sessions"].post
    expect(start.responses["404"].content?.["application/json"].schema).toEqual({
      $ref: "#/components/schemas/voice_agent_not_found",
    })
    for (const { at, op } of operations) {
      const refs = JSON.stringify(op.responses)
      expect({ at, routing: /route_not_found|method_not_allowed|HttpApiDecodeError/.test(refs) }).toEqual({
        at,
        routing: false,
      })
      expect(op.responses["405"]).toBeUndefined()
    }
  })

  test("wait_for_completion is a boolean; id path parameters are UUIDs", () => {
    const get = spec.paths["/api/v1/voice/sessions/{id}"].get
    expect(get.parameters.find((p) => p.name === "wait_for_completion")?.schema).toEqual({ type: "boolean" })
    const ids = operations.flatMap(({ at, op }) =>
      op.parameters.filter((p) => p.in === "path").map((p) => ({ at, name: p.name, ...p.schema })),
    )
    expect(ids.length).toBeGreaterThanOrEqual(8)
    for (const id of ids) expect(id).toMatchObject({ type: "string", format: "uuid" })
  })

  test("webhooks: each event's payload is described, its data the session GET returns", () => {
    expect(Object.keys(spec.webhooks)).toEqual([
      "voice_session.started",
      "voice_session.completed",
      "voice_session.failed",
      "voice_session.expired",
    ])
    const get = spec.paths["/api/v1/voice/sessions/{id}"].get
    const session = JSON.stringify(get.responses["200"].content?.["application/json"].schema)
    expect(session).toContain("#/components/schemas/VoiceSession")
    for (const [type, { post }] of Object.entries(spec.webhooks)) {
      const ref = (post.requestBody.content["application/json"].schema as { $ref: string }).$ref
      const payload = spec.components.schemas[ref.replace("#/components/schemas/", "")]
      expect(payload.properties.type).toEqual({ type: "string", enum: [type] })
      expect(payload.properties.data).toEqual({ $ref: "#/components/schemas/VoiceSession" })
      expect(post.parameters.map((p) => p.name)).toEqual([
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
      ])
    }
  })
})
