import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer } from "effect"
import { Api } from "../Api.ts"
import { CurrentOrg } from "../Auth/Middleware.ts"
import { envelope } from "../Domain/Envelope.ts"
import type { OrgId } from "../Domain/Ids.ts"
import { DEFAULT_DELIVERY_PAGE, WebhookEndpoints } from "../WebhookEndpoints.ts"

/** What `run` gives for the request's organization, in an envelope of type `object`. */
const answer = <O extends string, A, E, R>(
  object: O,
  run: (orgId: OrgId) => Effect.Effect<A, E, R>,
  status = "completed",
) =>
  CurrentOrg.pipe(
    Effect.flatMap(({ orgId }) => run(orgId)),
    Effect.flatMap((data) => envelope(object, data, status)),
  )

/** The handlers with their service (its repository included). */
export const WebhookEndpointsHttpLive = HttpApiBuilder.group(Api, "webhookEndpoints", (handlers) =>
  Effect.gen(function* () {
    const endpoints = yield* WebhookEndpoints
    return handlers
      .handle("create", ({ payload }) =>
        answer("webhook_endpoint", (orgId) => endpoints.create(orgId, payload)),
      )
      .handle("list", () => answer("list", (orgId) => endpoints.list(orgId)))
      .handle("get", ({ path }) => answer("webhook_endpoint", (orgId) => endpoints.get(orgId, path.id)))
      .handle("update", ({ path, payload }) =>
        answer("webhook_endpoint", (orgId) => endpoints.update(orgId, path.id, payload)),
      )
      .handle("delete", ({ path }) =>
        answer("webhook_endpoint.deleted", (orgId) => endpoints.remove(orgId, path.id)),
      )
      .handle("rotateSecret", ({ path }) =>
        answer("webhook_endpoint", (orgId) => endpoints.rotateSecret(orgId, path.id)),
      )
      .handle("deliveries", ({ path, urlParams }) =>
        answer("list", (orgId) =>
          endpoints.deliveries(
            orgId,
            path.id,
            urlParams.limit ?? DEFAULT_DELIVERY_PAGE,
            urlParams.starting_after,
          ),
        ),
      )
      .handle("redeliver", ({ path }) =>
        answer(
          "webhook_delivery",
          (orgId) => endpoints.redeliver(orgId, path.id, path.delivery_id),
          "pending",
        ),
      )
  }),
).pipe(Layer.provide(WebhookEndpoints.Live))
