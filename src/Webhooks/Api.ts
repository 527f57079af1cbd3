import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Envelope } from "../Domain/Envelope.ts"
import { ServiceUnavailable, WebhookVerificationFailed, wire } from "../Domain/Errors.ts"
import { WebhookReceipt } from "../Domain/Session.ts"

/** No API key: LiveKit signs the raw body, verified before anything is parsed. */
export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.post("livekit", "/api/v1/voice/webhooks/livekit")
      .addSuccess(Envelope("webhook_receipt", WebhookReceipt))
      .addError(wire(WebhookVerificationFailed))
      .addError(wire(ServiceUnavailable))
      .annotate(OpenApi.Summary, "Receive a LiveKit webhook")
      .annotate(
        OpenApi.Description,
        "LiveKit-signed webhook receiver: `Authorization` is a JWT signed with the webhook key/secret whose sha256 claim is the body's digest.",
      ),
  )
  .annotate(OpenApi.Title, "Webhooks")
  .annotate(
    OpenApi.Description,
    "Room and participant events from LiveKit, recorded in the session's metadata (no API key: LiveKit signs the request).",
  ) {}
