import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ApiKey, ApiKeyCreated } from "../Domain/ApiKey.ts"
import { Envelope, ListOf } from "../Domain/Envelope.ts"
import { ApiKeyNotFound, OrganizationNotFound, wire } from "../Domain/Errors.ts"
import { object, optional, strict, Text } from "../Domain/Fields.ts"
import { Organization } from "../Domain/Organization.ts"
import { JsonBody } from "../Http/Body.ts"
import { onOne } from "../Http/Resources.ts"
import { AdminAuthenticated } from "./Middleware.ts"

const uuidParam = Schema.UUID.annotations({ message: () => "must be a UUID" })

const onOrg = onOne(Schema.Struct({ org_id: uuidParam }), OrganizationNotFound)

export class AdminApi extends HttpApiGroup.make("admin")
  .middleware(AdminAuthenticated)
  .add(
    HttpApiEndpoint.post("createOrg", "/admin/v1/orgs")
      .setPayload(JsonBody(Schema.Struct({ name: Text(1, 200) }).annotations({ ...strict, ...object })))
      .addSuccess(Envelope("organization", Organization), { status: 201 })
      .annotate(OpenApi.Summary, "Create an organization"),
  )
  .add(
    HttpApiEndpoint.get("listOrgs", "/admin/v1/orgs")
      .addSuccess(Envelope("list", ListOf(Organization)))
      .annotate(OpenApi.Summary, "List organizations")
      .annotate(OpenApi.Description, "Every organization, newest first."),
  )
  .add(
    onOrg(HttpApiEndpoint.post("createKey", "/admin/v1/orgs/:org_id/api_keys"))
      .setPayload(
        JsonBody(Schema.Struct({ name: optional(Text(1, 200)) }).annotations({ ...strict, ...object })),
      )
      .addSuccess(Envelope("api_key", ApiKeyCreated), { status: 201 })
      .annotate(OpenApi.Summary, "Create an API key")
      .annotate(OpenApi.Description, "The key is in this response only; Parley stores its SHA-256 digest."),
  )
  .add(
    onOrg(HttpApiEndpoint.get("listKeys", "/admin/v1/orgs/:org_id/api_keys"))
      .addSuccess(Envelope("list", ListOf(ApiKey)))
      .annotate(OpenApi.Summary, "List an organization's API keys")
      .annotate(OpenApi.Description, "Newest first; never the keys themselves."),
  )
  .add(
    HttpApiEndpoint.del("revokeKey", "/admin/v1/api_keys/:key_id")
      .setPath(Schema.Struct({ key_id: uuidParam }))
      .addSuccess(Envelope("api_key", Schema.Struct({ key_id: Schema.UUID, revoked: Schema.Literal(true) })))
      .addError(wire(ApiKeyNotFound))
      .annotate(OpenApi.Summary, "Revoke an API key")
      .annotate(OpenApi.Description, "Effective immediately; revoking a revoked key is still 200."),
  )
  .annotate(OpenApi.Title, "Admin")
  .annotate(
    OpenApi.Description,
    "Organizations and API keys, with `Authorization: Bearer $ADMIN_TOKEN`. While ADMIN_TOKEN is unset every /admin path answers 404 route_not_found.",
  ) {}
