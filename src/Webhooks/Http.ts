import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../Api.ts"
import { envelope } from "../Domain/Envelope.ts"
import { WebhookVerificationFailed } from "../Domain/Errors.ts"
import { LiveKit } from "../LiveKit.ts"
import { Webhooks } from "../Webhooks.ts"

export const WebhooksHttpLive = HttpApiBuilder.group(Api, "webhooks", (handlers) =>
  Effect.gen(function* () {
    const livekit = yield* LiveKit
    const webhooks = yield* Webhooks
    return handlers.handle("livekit", ({ request }) =>
      Effect.gen(function* () {
        const body = yield* request.text.pipe(
          Effect.mapError(
            () => new WebhookVerificationFailed({ message: "Could not read the webhook body." }),
          ),
        )
        const event = yield* livekit
          .verifyWebhook(body, request.headers.authorization)
          .pipe(Effect.mapError((e) => new WebhookVerificationFailed({ message: e.message })))
        const handled = yield* webhooks.handle(event)
        return yield* envelope("webhook_receipt", { received: true as const, handled })
      }),
    )
  }),
)
