import { HttpApi, OpenApi } from "@effect/platform"
import { AgentsApi } from "./Agents/Api.ts"
import { AdminApi } from "./Auth/AdminApi.ts"
import {
  InternalError,
  InvalidJson,
  InvalidRequest,
  InvalidRequestBody,
  MethodNotAllowed,
  PayloadTooLarge,
  RouteNotFound,
  ServiceUnavailable,
  UnsupportedMediaType,
  wire,
} from "./Domain/Errors.ts"
import { OpsApi } from "./Ops/Api.ts"
import { SessionsApi } from "./Sessions/Api.ts"
import { VoicesApi } from "./Voices/Api.ts"
import { WebhooksApi } from "./Webhooks/Api.ts"

/** Decode failures reach clients as `invalid_request` / `invalid_request_body` (see Http.ts), so the docs leave that schema out. */
const hideDecodeError = (spec: Record<string, unknown>): Record<string, unknown> =>
  JSON.parse(
    JSON.stringify(spec, (_key, value: unknown) => {
      if (Array.isArray(value))
        return value.filter(
          (v) => !(typeof v === "object" && v?.$ref === "#/components/schemas/HttpApiDecodeError"),
        )
      return value
    }),
    (key, value: unknown) => (key === "HttpApiDecodeError" ? undefined : value),
  )

export class Api extends HttpApi.make("parley")
  .add(OpsApi)
  .add(VoicesApi)
  .add(AgentsApi)
  .add(SessionsApi)
  .add(WebhooksApi)
  .add(AdminApi)
  .annotate(OpenApi.Title, "Parley")
  .annotate(OpenApi.Version, "1.0.0")
  .annotate(
    OpenApi.Description,
    "Typed voice-agent session API, wire-compatible with the Pi Voice API. Every error uses one envelope.",
  )
  .annotate(OpenApi.Transform, hideDecodeError)
  .addError(wire(InvalidRequest))
  .addError(wire(InvalidRequestBody))
  .addError(wire(InvalidJson))
  .addError(wire(RouteNotFound))
  .addError(wire(MethodNotAllowed))
  .addError(wire(PayloadTooLarge))
  .addError(wire(UnsupportedMediaType))
  .addError(wire(ServiceUnavailable))
  .addError(wire(InternalError)) {}
