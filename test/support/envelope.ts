/** Assertions on the one error envelope. */
import { expect } from "bun:test"

/** A 503 `service_unavailable` in the envelope, with the request id of its header and no SQL or stack. */
export const expectUnavailable = async (res: Response) => {
  expect(res.status).toBe(503)
  const body = (await res.json()) as { error: Record<string, unknown> }
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "request_id", "type"])
  expect(body.error).toMatchObject({ type: "api_error", code: "service_unavailable" })
  expect(body.error.request_id).toBe(res.headers.get("x-request-id") as string)
  expect(JSON.stringify(body)).not.toMatch(/SELECT|INSERT|ECONN|at .*\.ts/)
}
