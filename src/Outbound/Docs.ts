/** The OpenAPI 3.1 `webhooks` section: what an endpoint receives for each event, and how it is signed. */
import { EVENT_TYPES, type EventType, eventPayload } from "../Domain/WebhookEndpoint.ts"

/** The payload schemas, added to the document's components (HttpApi.AdditionalSchemas). */
export const eventSchemas = EVENT_TYPES.map(eventPayload)

const header = (name: string, description: string) => ({
  name,
  in: "header",
  required: true,
  description,
  schema: { type: "string" },
})

const SIGNING =
  "Signed per Standard Webhooks (https://www.standardwebhooks.com): verify `webhook-signature` with the " +
  "endpoint's secret before trusting the body (e.g. `new Webhook(secret).verify(body, headers)` of the " +
  "`standardwebhooks` package). Deliveries are retried with exponential backoff for 24 hours until a 2xx " +
  "answer; a session's events reach an endpoint in order, at least once (deduplicate by `webhook-id`)."

const operation = (type: EventType, schema: string) => ({
  post: {
    operationId: `${schema.charAt(0).toLowerCase()}${schema.slice(1)}Webhook`,
    summary: `Event ${type}`,
    description: SIGNING,
    tags: ["Webhook endpoints"],
    security: [],
    parameters: [
      header("webhook-id", "The message id: the same on every attempt of this event (the payload's `id`)."),
      header("webhook-timestamp", "When this attempt was sent, in Unix seconds."),
      header(
        "webhook-signature",
        "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`; two while a rotated secret overlaps.",
      ),
    ],
    requestBody: {
      required: true,
      content: { "application/json": { schema: { $ref: `#/components/schemas/${schema}` } } },
    },
    responses: {
      "200": { description: "Any 2xx answer (within 10 s) acknowledges the delivery." },
      "400": { description: "Any other answer, or none, fails the attempt; it is retried." },
    },
  },
})

/** The `webhooks` of the document, by event type. */
export const outboundWebhooks = Object.fromEntries(
  eventSchemas.map((schema, i) => {
    const type = EVENT_TYPES[i] as EventType
    const name = (schema.ast.annotations[Symbol.for("effect/annotation/Identifier")] as string) ?? type
    return [type, operation(type, name)]
  }),
)
