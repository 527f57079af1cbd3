import { HttpApi, OpenApi } from "@effect/platform"
import { AgentsApi } from "./Agents/Api.ts"
import { AdminApi } from "./Auth/AdminApi.ts"
import {
  IdempotencyKeyInUse,
  IdempotencyKeyReused,
  InternalError,
  InvalidJson,
  InvalidRequest,
  InvalidRequestBody,
  MethodNotAllowed,
  PayloadTooLarge,
  RequestHeaderFieldsTooLarge,
  RequestTimeout,
  RouteNotFound,
  ServiceUnavailable,
  UnsupportedMediaType,
  wire,
} from "./Domain/Errors.ts"
import { documentIdempotency } from "./Idempotency/OpenApi.ts"
import { OpsApi } from "./Ops/Api.ts"
import { eventSchemas, outboundWebhooks } from "./Outbound/Docs.ts"
import { SessionsApi } from "./Sessions/Api.ts"
import { VoicesApi } from "./Voices/Api.ts"
import { WebhookEndpointsApi } from "./WebhookEndpoints/Api.ts"
import { WebhooksApi } from "./Webhooks/Api.ts"

type Json = Record<string, unknown>
const isJson = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

const SCHEMAS = "#/components/schemas/"
const refName = (u: unknown): string | undefined =>
  isJson(u) && typeof u.$ref === "string" && u.$ref.startsWith(SCHEMAS)
    ? u.$ref.slice(SCHEMAS.length)
    : undefined

/**
 * Left out of each operation's responses: decode failures reach clients as `invalid_request` /
 * `invalid_request_body` (see Http.ts), and the routing errors, declared on the whole API so the
 * error encoder knows them, never happen on a route that matched (the API description names them).
 */
const UNDOCUMENTED = new Set(["HttpApiDecodeError", "route_not_found", "method_not_allowed"])

/** An error response lists only its own codes, which also become its description. */
const documentResponse = (response: Json): Json | undefined => {
  const content = isJson(response.content) ? response.content : {}
  const media = isJson(content["application/json"]) ? content["application/json"] : undefined
  if (media === undefined) return response
  const members =
    isJson(media.schema) && Array.isArray(media.schema.anyOf) ? media.schema.anyOf : [media.schema]
  if (!members.every((m) => refName(m) !== undefined)) return response
  const kept = members.filter((m) => !UNDOCUMENTED.has(refName(m) ?? ""))
  if (kept.length === 0) return undefined
  return {
    ...response,
    description: kept.map(refName).join(" | "),
    content: {
      ...content,
      "application/json": { ...media, schema: kept.length === 1 ? kept[0] : { anyOf: kept } },
    },
  }
}

/** Component schemas reachable from the document outside `components.schemas`. */
const usedSchemas = (spec: Json, schemas: Json): Set<string> => {
  const used = new Set<string>()
  const visit = (value: unknown) =>
    JSON.stringify(value, (key, v: unknown) => {
      if (key === "$ref" && typeof v === "string" && v.startsWith(SCHEMAS)) {
        const name = v.slice(SCHEMAS.length)
        if (!used.has(name)) {
          used.add(name)
          visit(schemas[name])
        }
      }
      return v
    })
  visit({ ...spec, components: { ...(spec.components as Json), schemas: {} } })
  return used
}

/** The generated document as clients should read it (also what Redocly's `recommended` rules check). */
const documented = (spec: Json): Json => {
  const paths = Object.fromEntries(
    Object.entries(spec.paths as Record<string, Record<string, Json>>).map(([path, operations]) => [
      path,
      Object.fromEntries(
        Object.entries(operations).map(([method, op]) => [
          method,
          {
            ...op,
            responses: Object.fromEntries(
              Object.entries(op.responses as Record<string, Json>).flatMap(([status, response]) => {
                const kept = Number(status) >= 400 ? documentResponse(response) : response
                return kept === undefined ? [] : [[status, kept]]
              }),
            ),
          },
        ]),
      ),
    ]),
  )
  const components = spec.components as Json
  const schemas = components.schemas as Json
  // the outbound webhooks' payloads (OpenAPI 3.1 `webhooks`), next to the paths that manage them
  const trimmed = { ...spec, paths, webhooks: outboundWebhooks }
  const used = usedSchemas(trimmed, schemas)
  return {
    ...trimmed,
    components: {
      ...components,
      schemas: Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name))),
    },
  }
}

export class Api extends HttpApi.make("parley")
  .add(OpsApi)
  .add(VoicesApi)
  .add(AgentsApi)
  .add(SessionsApi)
  .add(WebhooksApi)
  .add(WebhookEndpointsApi)
  .add(AdminApi)
  .annotate(OpenApi.Title, "Parley")
  .annotate(OpenApi.Version, "1.0.0")
  .annotate(
    OpenApi.Description,
    "Typed voice-agent session API, wire-compatible with the Pi Voice API. Every error uses one envelope, " +
      "`{error: {type, code, message, request_id, param?, issues?}}`. Besides the errors listed per " +
      "operation, an unknown path answers 404 `route_not_found` and a known path with another method " +
      "405 `method_not_allowed` (with an `Allow` header).",
  )
  .annotate(OpenApi.Servers, [{ url: "/", description: "The server this document was fetched from" }])
  .annotate(OpenApi.Transform, (spec) => documentIdempotency(documented(spec)))
  .annotate(HttpApi.AdditionalSchemas, eventSchemas)
  .addError(wire(InvalidRequest))
  .addError(wire(InvalidRequestBody))
  .addError(wire(InvalidJson))
  .addError(wire(RouteNotFound))
  .addError(wire(MethodNotAllowed))
  .addError(wire(PayloadTooLarge))
  .addError(wire(RequestHeaderFieldsTooLarge))
  .addError(wire(UnsupportedMediaType))
  .addError(wire(RequestTimeout))
  .addError(wire(ServiceUnavailable))
  .addError(wire(InternalError))
  .addError(wire(IdempotencyKeyReused))
  .addError(wire(IdempotencyKeyInUse)) {}
