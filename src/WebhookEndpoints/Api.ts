import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Authenticated } from "../Auth/Middleware.ts"
import { Envelope, ListOf } from "../Domain/Envelope.ts"
import {
  WebhookDeliveryNotFound,
  WebhookEndpointNotFound,
  WebhookUrlNotAllowed,
  wire,
} from "../Domain/Errors.ts"
import { IdPath } from "../Domain/Ids.ts"
import {
  CreateWebhookEndpoint,
  Delivery,
  DeliveryList,
  DeliveryPage,
  DeliveryPath,
  EndpointId,
  UpdateWebhookEndpoint,
  WebhookEndpoint,
  WebhookEndpointDeleted,
  WebhookEndpointWithSecret,
} from "../Domain/WebhookEndpoint.ts"
import { JsonBody } from "../Http/Body.ts"
import { onOne } from "../Http/Resources.ts"

const BASE = "/api/v1/voice/webhook_endpoints"
/** `…/:id` endpoints on a webhook endpoint of the caller's organization. */
const onEndpoint = onOne(IdPath(EndpointId), WebhookEndpointNotFound)

export class WebhookEndpointsApi extends HttpApiGroup.make("webhookEndpoints")
  .middleware(Authenticated)
  .add(
    HttpApiEndpoint.post("create", BASE)
      .setPayload(JsonBody(CreateWebhookEndpoint))
      .addSuccess(Envelope("webhook_endpoint", WebhookEndpointWithSecret), { status: 201 })
      .addError(wire(WebhookUrlNotAllowed))
      .annotate(OpenApi.Summary, "Create a webhook endpoint")
      .annotate(
        OpenApi.Description,
        "Registers a URL that receives the organization's session events, signed per Standard Webhooks. " +
          "The answer carries the signing `secret`: store it, it is not shown again.",
      ),
  )
  .add(
    HttpApiEndpoint.get("list", BASE)
      .addSuccess(Envelope("list", ListOf(WebhookEndpoint)))
      .annotate(OpenApi.Summary, "List webhook endpoints"),
  )
  .add(
    onEndpoint(HttpApiEndpoint.get("get", `${BASE}/:id`))
      .addSuccess(Envelope("webhook_endpoint", WebhookEndpoint))
      .annotate(OpenApi.Summary, "Get a webhook endpoint"),
  )
  .add(
    onEndpoint(HttpApiEndpoint.patch("update", `${BASE}/:id`))
      .setPayload(JsonBody(UpdateWebhookEndpoint))
      .addSuccess(Envelope("webhook_endpoint", WebhookEndpoint))
      .addError(wire(WebhookUrlNotAllowed))
      .annotate(OpenApi.Summary, "Update a webhook endpoint")
      .annotate(
        OpenApi.Description,
        "`enabled: true` re-enables an endpoint disabled after failing (clears `disabled_reason`).",
      ),
  )
  .add(
    onEndpoint(HttpApiEndpoint.del("delete", `${BASE}/:id`))
      .addSuccess(Envelope("webhook_endpoint.deleted", WebhookEndpointDeleted))
      .annotate(OpenApi.Summary, "Delete a webhook endpoint"),
  )
  .add(
    onEndpoint(HttpApiEndpoint.post("rotateSecret", `${BASE}/:id/rotate_secret`))
      .addSuccess(Envelope("webhook_endpoint", WebhookEndpointWithSecret))
      .annotate(OpenApi.Summary, "Rotate a webhook endpoint's signing secret")
      .annotate(
        OpenApi.Description,
        "Answers with the new `secret` (shown only now). For 24 hours the replaced secret signs too: " +
          "`webhook-signature` then carries two `v1,` signatures, and a receiver holding either verifies.",
      ),
  )
  .add(
    onEndpoint(HttpApiEndpoint.get("deliveries", `${BASE}/:id/deliveries`))
      .setUrlParams(DeliveryPage)
      .addSuccess(Envelope("list", DeliveryList))
      .annotate(OpenApi.Summary, "List a webhook endpoint's deliveries")
      .annotate(
        OpenApi.Description,
        "Newest first, `limit` (1-100, default 20) per page; pass the last `delivery_id` as `starting_after` " +
          "for the next page. Each delivery lists its attempts (status code, latency, error).",
      ),
  )
  .add(
    HttpApiEndpoint.post("redeliver", `${BASE}/:id/deliveries/:delivery_id/redeliver`)
      .setPath(DeliveryPath)
      .addSuccess(Envelope("webhook_delivery", Delivery), { status: 202 })
      .addError(wire(WebhookEndpointNotFound))
      .addError(wire(WebhookDeliveryNotFound))
      .annotate(OpenApi.Summary, "Redeliver a webhook")
      .annotate(
        OpenApi.Description,
        "Sends the delivery's event again (same `webhook-id`), retried as a new delivery would be.",
      ),
  )
  .annotate(OpenApi.Title, "Webhook endpoints")
  .annotate(
    OpenApi.Description,
    "Outbound webhooks: URLs that receive signed `voice_session.*` events (see the document's `webhooks`), " +
      "their deliveries and attempts.",
  ) {}
