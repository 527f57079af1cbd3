import { HttpApiBuilder, HttpApiScalar, HttpMiddleware, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { AgentsHttpLive } from "./Agents/Http.ts"
import { Agents } from "./Agents.ts"
import { Api } from "./Api.ts"
import { AdminHttpLive } from "./Auth/AdminHttp.ts"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { AdminAuthenticatedLive, AuthenticatedLive } from "./Auth/Middleware.ts"
import { ErrorMappingLive, requestLifecycle, withRequestIdHeader } from "./Http.ts"
import { Idempotency } from "./Idempotency.ts"
import { Limits } from "./Limits.ts"
import { OpsHttpLive } from "./Ops/Http.ts"
import { DispatcherLive } from "./Outbound/Dispatcher.ts"
import { SessionsHttpLive } from "./Sessions/Http.ts"
import { SweeperLive } from "./Sessions/Sweeper.ts"
import { Sessions } from "./Sessions.ts"
import { VoicesHttpLive } from "./Voices/Http.ts"
import { WebhookEndpointsHttpLive } from "./WebhookEndpoints/Http.ts"
import { WebhooksHttpLive } from "./Webhooks/Http.ts"
import { Webhooks } from "./Webhooks.ts"

/** The business services. Needs AppConfig, SqlClient, LiveKit, Gemini and a CompletionHub. */
export const ServicesLive = Layer.mergeAll(Sessions.Live, Webhooks.Live, Limits.Live, Idempotency.Live).pipe(
  Layer.provideMerge(Agents.Live),
  Layer.provideMerge(ApiKeys.Live),
)

/** The HttpApi with every handler, plus the background sweeper and the webhook dispatcher. */
export const ApiLive = Layer.mergeAll(HttpApiBuilder.api(Api), SweeperLive, DispatcherLive).pipe(
  Layer.provide([
    OpsHttpLive,
    VoicesHttpLive,
    AgentsHttpLive,
    SessionsHttpLive,
    WebhooksHttpLive,
    WebhookEndpointsHttpLive,
    AdminHttpLive,
  ]),
  Layer.provide([AuthenticatedLive, AdminAuthenticatedLive]),
  Layer.provideMerge(ServicesLive),
)

/** `GET /` sends a browser to the API reference (not an API endpoint, so not in the document). */
const RootRedirectLive = HttpApiBuilder.Router.use((router) =>
  router.get("/", Effect.succeed(HttpServerResponse.redirect("/docs", { status: 302 }))),
)

/** Serves the API, /openapi.json and /docs (with `/` redirecting there) on whatever HttpServer is provided. */
export const ServerLive = HttpApiBuilder.serve(requestLifecycle).pipe(
  Layer.provide([
    HttpApiScalar.layer({ path: "/docs", scalar: { withDefaultFonts: false } }),
    RootRedirectLive,
    HttpApiBuilder.middlewareOpenApi(),
    ErrorMappingLive,
  ]),
  Layer.provideMerge(ApiLive),
  // no span exporter is configured: the platform's per-request span (every header) is pure cost
  HttpMiddleware.withTracerDisabledWhen(() => true),
  withRequestIdHeader,
)
