/** Outbound webhooks: the endpoints an organization registers, the events sent to them, their deliveries. */
import { Schema } from "effect"
import { PageOf } from "./Envelope.ts"
import { Bool, IntParam, nonEmptyPatch, OneOf, object, optional, Str, strict, Text } from "./Fields.ts"
import { Session } from "./Session.ts"

const Uuid = (message: string) =>
  Schema.compose(Str, Schema.UUID.annotations({ message: () => message })).annotations({
    jsonSchema: { type: "string", format: "uuid" },
  })

export const EndpointId = Uuid("must be a UUID").pipe(Schema.brand("WebhookEndpointId"))
export type EndpointId = typeof EndpointId.Type
export const DeliveryId = Uuid("must be a UUID").pipe(Schema.brand("WebhookDeliveryId"))
export type DeliveryId = typeof DeliveryId.Type

/** The events a session's changes send, in the order a session can go through them. */
export const EVENT_TYPES = [
  "voice_session.started",
  "voice_session.completed",
  "voice_session.failed",
  "voice_session.expired",
] as const
export const EventType = Schema.Literal(...EVENT_TYPES)
export type EventType = typeof EventType.Type

/** What an endpoint subscribes to: event types, or `*` for every type (also those added later). */
export const EnabledEvents = Schema.Array(OneOf(...EVENT_TYPES, "*"))
  .annotations({ message: () => "must be an array of event types" })
  .pipe(
    Schema.minItems(1, { message: () => "must name at least one event type (or *)" }),
    Schema.maxItems(EVENT_TYPES.length + 1, { message: () => "must not repeat event types" }),
    Schema.filter((types) =>
      new Set(types).size === types.length ? undefined : "must not repeat event types",
    ),
  )

/** An absolute http(s) URL; which hosts are allowed is decided by the service (Outbound/Targets.ts). */
export const EndpointUrl = Str.pipe(
  Schema.maxLength(2048, { message: () => "must be at most 2048 characters" }),
  Schema.filter(
    (s) => (URL.canParse(s) && /^https?:$/.test(new URL(s).protocol) ? undefined : "must be an http(s) URL"),
    {
      jsonSchema: { format: "uri" },
    },
  ),
)

export const CreateWebhookEndpoint = Schema.Struct({
  url: EndpointUrl,
  description: optional(Schema.NullOr(Text(0, 500))),
  enabled_events: optional(EnabledEvents),
  enabled: optional(Bool),
}).annotations({ ...strict, ...object, identifier: "CreateWebhookEndpoint" })
export type CreateWebhookEndpoint = typeof CreateWebhookEndpoint.Type

export const UpdateWebhookEndpoint = Schema.Struct({
  url: optional(EndpointUrl),
  description: optional(Schema.NullOr(Text(0, 500))),
  enabled_events: optional(EnabledEvents),
  enabled: optional(Bool),
})
  .annotations({ ...strict, ...object })
  .pipe(nonEmptyPatch("UpdateWebhookEndpoint"))
export type UpdateWebhookEndpoint = typeof UpdateWebhookEndpoint.Type

export const WebhookEndpoint = Schema.Struct({
  endpoint_id: EndpointId,
  url: Schema.String,
  description: Schema.NullOr(Schema.String),
  enabled_events: Schema.Array(Schema.String),
  enabled: Schema.Boolean,
  /** Why deliveries stopped (set when the endpoint was disabled after failing for the retry window). */
  disabled_reason: Schema.NullOr(Schema.String),
  /** Deliveries have failed without a success since then (null: the last one succeeded). */
  failing_since: Schema.NullOr(Schema.Int),
  /** After a rotation the previous secret also signs until then. */
  previous_secret_expires_at: Schema.NullOr(Schema.Int),
  created_at: Schema.Int,
  updated_at: Schema.Int,
}).annotations({ identifier: "WebhookEndpoint" })
export type WebhookEndpoint = typeof WebhookEndpoint.Type

/** The create and rotate answers: the only times the signing secret is shown. */
export const WebhookEndpointWithSecret = Schema.Struct({
  ...WebhookEndpoint.fields,
  secret: Schema.String.annotations({
    description: "Standard Webhooks signing secret (`whsec_` + base64); shown only now.",
  }),
}).annotations({ identifier: "WebhookEndpointWithSecret" })

export const WebhookEndpointDeleted = Schema.Struct({
  endpoint_id: EndpointId,
  deleted: Schema.Literal(true),
}).annotations({ identifier: "WebhookEndpointDeleted" })

export const DeliveryStatus = Schema.Literal("pending", "delivered", "failed")

export const DeliveryAttempt = Schema.Struct({
  attempt: Schema.Int,
  attempted_at: Schema.Int,
  /** The receiver's HTTP status; null when no response arrived (timeout, refused, connection closed). */
  status_code: Schema.NullOr(Schema.Int),
  latency_ms: Schema.Int,
  error: Schema.NullOr(Schema.String),
}).annotations({ identifier: "WebhookDeliveryAttempt" })

export const Delivery = Schema.Struct({
  delivery_id: DeliveryId,
  endpoint_id: EndpointId,
  /** The `webhook-id` header and the payload's `id`: the same on every attempt. */
  event_id: Schema.String,
  event_type: Schema.String,
  session_id: Schema.String,
  status: DeliveryStatus,
  next_attempt_at: Schema.NullOr(Schema.Int),
  created_at: Schema.Int,
  delivered_at: Schema.NullOr(Schema.Int),
  /** Oldest first; at most the last 50. */
  attempts: Schema.Array(DeliveryAttempt),
}).annotations({ identifier: "WebhookDelivery" })
export type Delivery = typeof Delivery.Type

export const DeliveryList = PageOf(Delivery)

export const DeliveryPage = Schema.Struct({
  limit: optional(IntParam(1, 100)),
  /** A delivery id: the page starts after it (newest first). */
  starting_after: optional(DeliveryId),
})

export const DeliveryPath = Schema.Struct({ id: EndpointId, delivery_id: DeliveryId })

/** The body of every webhook: Standard Webhooks' `{type, timestamp, data}`, plus the message id. */
export const eventPayload = (type: EventType) =>
  Schema.Struct({
    id: Schema.String.annotations({ description: "The message id, also sent as `webhook-id`." }),
    type: Schema.Literal(type),
    timestamp: Schema.String.annotations({ description: "When the change happened (ISO 8601)." }),
    data: Session,
  }).annotations({
    identifier: `${type.replace(/(^|[._])(\w)/g, (_, __, c: string) => c.toUpperCase())}Event`,
    description: `Sent when a session ${type.slice("voice_session.".length)}; \`data\` is the session as GET /api/v1/voice/sessions/{id} returns it at that moment.`,
  })
