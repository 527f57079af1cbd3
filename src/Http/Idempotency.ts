import { createHash } from "node:crypto"
import type { HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import {
  type IdempotencyKeyInUse,
  type IdempotencyKeyReused,
  InvalidRequest,
  type ServiceUnavailable,
} from "../Domain/Errors.ts"
import type { OrgId } from "../Domain/Ids.ts"
import { IDEMPOTENCY_HEADER, keyProblem } from "../Idempotency/Key.ts"
import type { IdempotencyService } from "../Idempotency.ts"

const invalid = (message: string, problem: string) =>
  new InvalidRequest({
    message,
    param: IDEMPOTENCY_HEADER,
    issues: [{ path: IDEMPOTENCY_HEADER, message: problem }],
  })

/** What the middleware knows of a request once it is authenticated and its body read. */
export interface Served {
  /** An admin route (the admin token, no organization). */
  readonly admin: boolean
  /** The organization of the request's API key, if it needed one. */
  readonly orgId: OrgId | undefined
  /** The path as the router sees it. */
  readonly pathname: string
  /** The request the endpoint reads (its body already in memory). */
  readonly request: HttpServerRequest.HttpServerRequest
}

/**
 * `served` under its `Idempotency-Key`, when it is a POST with an API key and has one; anything else
 * unchanged (as Stripe, the header means nothing on other methods). Admin POSTs refuse the header: the
 * replay of a created API key would need the key stored in clear for 24 h.
 */
export const idempotentWith =
  (idempotency: IdempotencyService) =>
  <E, R>(
    { admin, orgId, pathname, request }: Served,
    served: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  ): Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    | E
    | InvalidRequest
    | IdempotencyKeyReused
    | IdempotencyKeyInUse
    | ServiceUnavailable
    | HttpServerError.RequestError,
    R
  > => {
    if (request.method !== "POST") return served
    const key = request.headers["idempotency-key"]
    if (key === undefined) return served
    if (admin)
      return Effect.fail(
        invalid(
          "Idempotency-Key is not supported on admin routes.",
          "is not supported on admin routes (a replay would need the created API key stored)",
        ),
      )
    if (orgId === undefined) return served
    const problem = keyProblem(key)
    if (problem !== undefined) return Effect.fail(invalid(`Idempotency-Key ${problem}.`, problem))
    // The body as the endpoint reads it (`text` is cached: reading it here costs the endpoint nothing).
    return Effect.flatMap(request.text, (text) =>
      idempotency.run(
        {
          orgId,
          key,
          method: request.method,
          path: pathname,
          body_hash: createHash("sha256").update(text).digest("hex"),
        },
        served,
      ),
    )
  }
