import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ServiceUnavailable, wire } from "../Domain/Errors.ts"

export class OpsApi extends HttpApiGroup.make("ops")
  .add(
    HttpApiEndpoint.get("health", "/healthz")
      .addSuccess(Schema.Struct({ status: Schema.Literal("ok") }))
      .annotate(OpenApi.Summary, "Liveness: the process is up"),
  )
  .add(
    HttpApiEndpoint.get("ready", "/readyz")
      .addSuccess(Schema.Struct({ status: Schema.Literal("ready") }))
      .addError(wire(ServiceUnavailable))
      .annotate(OpenApi.Summary, "Readiness: the database answers and is migrated"),
  )
  .annotate(OpenApi.Title, "Operations")
  .annotate(OpenApi.Description, "Liveness and readiness probes (no authentication).") {}
