/** Outbound webhook endpoints: their rules (allowed URLs, secrets shown once, rotation, redelivery). */
import { Context, Effect, Layer, Option } from "effect"
import { AppConfig } from "./Config.ts"
import { WebhookDeliveryNotFound, WebhookEndpointNotFound, WebhookUrlNotAllowed } from "./Domain/Errors.ts"
import type { OrgId } from "./Domain/Ids.ts"
import type {
  CreateWebhookEndpoint,
  DeliveryId,
  EndpointId,
  UpdateWebhookEndpoint,
  WebhookEndpoint,
} from "./Domain/WebhookEndpoint.ts"
import { EndpointsRepo } from "./Outbound/EndpointsRepo.ts"
import { newSecret } from "./Outbound/Signing.ts"
import { refusal } from "./Outbound/Targets.ts"

/** After a rotation the replaced secret keeps signing this long, alongside the new one. */
export const SECRET_OVERLAP_SECONDS = 24 * 3600
export const DEFAULT_DELIVERY_PAGE = 20

const notFound = (id: string) =>
  new WebhookEndpointNotFound({ message: `No webhook endpoint with id ${id}.`, param: "id" })

const make = Effect.gen(function* () {
  const repo = yield* EndpointsRepo
  const { webhookAllowPrivate } = yield* AppConfig

  const checkUrl = (url: string) =>
    Effect.flatMap(refusal(url, webhookAllowPrivate), (problem) =>
      problem === undefined
        ? Effect.void
        : Effect.fail(new WebhookUrlNotAllowed({ message: `url ${problem}.`, param: "url" })),
    )

  const found =
    (id: string) =>
    <A, E, R>(self: Effect.Effect<Option.Option<A>, E, R>) =>
      Effect.flatMap(self, (row) =>
        Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(notFound(id)),
      )

  const get = (orgId: OrgId, id: EndpointId) => repo.find({ orgId, id }).pipe(found(id))

  return {
    create: (orgId: OrgId, input: CreateWebhookEndpoint) =>
      Effect.zipRight(
        checkUrl(input.url),
        repo.insert({
          id: crypto.randomUUID(),
          org_id: orgId,
          url: input.url,
          description: input.description ?? null,
          enabled_events: input.enabled_events ?? ["*"],
          enabled: input.enabled ?? true,
          disabled_reason: null,
          secret: newSecret(),
        }),
      ),

    list: (orgId: OrgId) =>
      Effect.map(repo.list(orgId), (endpoints) => ({
        object: "list" as const,
        data: endpoints,
        has_more: false,
        total_count: endpoints.length,
      })),

    get,

    /** Each field sent replaces the stored one; enabling clears why it was disabled. */
    update: (orgId: OrgId, id: EndpointId, patch: UpdateWebhookEndpoint) =>
      Effect.zipRight(
        patch.url === undefined ? Effect.void : checkUrl(patch.url),
        repo
          .update({ orgId, id }, (current: WebhookEndpoint) => {
            const enabled = patch.enabled ?? current.enabled
            return {
              url: patch.url ?? current.url,
              description: patch.description === undefined ? current.description : patch.description,
              enabled_events: patch.enabled_events ?? current.enabled_events,
              enabled,
              disabled_reason: enabled ? null : current.disabled_reason,
            }
          })
          .pipe(found(id)),
      ),

    remove: (orgId: OrgId, id: EndpointId) =>
      Effect.flatMap(repo.remove({ orgId, id }), (removed) =>
        removed ? Effect.succeed({ endpoint_id: id, deleted: true as const }) : Effect.fail(notFound(id)),
      ),

    rotateSecret: (orgId: OrgId, id: EndpointId) =>
      repo.rotate({ orgId, id, secret: newSecret(), overlapSeconds: SECRET_OVERLAP_SECONDS }).pipe(found(id)),

    deliveries: (orgId: OrgId, id: EndpointId, limit: number, startingAfter: DeliveryId | undefined) =>
      Effect.zipRight(
        get(orgId, id),
        Effect.map(
          repo.deliveries({ endpointId: id, limit, startingAfter: startingAfter ?? null }),
          ({ deliveries, hasMore }) => ({ object: "list" as const, data: deliveries, has_more: hasMore }),
        ),
      ),

    /** Due again at once (with a fresh retry window), keeping its `webhook-id`. */
    redeliver: (orgId: OrgId, id: EndpointId, deliveryId: DeliveryId) =>
      Effect.gen(function* () {
        yield* get(orgId, id)
        const missing = new WebhookDeliveryNotFound({
          message: `No delivery ${deliveryId} on webhook endpoint ${id}.`,
          param: "delivery_id",
        })
        if (!(yield* repo.redeliver({ orgId, endpointId: id, id: deliveryId }))) return yield* missing
        return yield* Effect.flatMap(repo.delivery(id, deliveryId), (row) =>
          Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(missing),
        )
      }),
  }
})

export class WebhookEndpoints extends Context.Tag("Parley/WebhookEndpoints")<
  WebhookEndpoints,
  Effect.Effect.Success<typeof make>
>() {
  static readonly Live = Layer.effect(WebhookEndpoints, make).pipe(Layer.provide(EndpointsRepo.Live))
  /** Over the in-memory repository, for unit tests. */
  static readonly Test = Layer.effect(WebhookEndpoints, make).pipe(Layer.provide(EndpointsRepo.Test))
}
