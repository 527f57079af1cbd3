/**
 * The typed client (`import { makeClient } from "parley/client"`), built from the same HttpApi as the
 * server and the OpenAPI document: every route, its parameters, its answer and its errors (decoded
 * into the error classes, e.g. `VoiceSessionNotFound`) are typed. Bun imports this source; Node the
 * bundle `npm run build` writes to dist/ (run by `npm install`; checked on Node 20).
 */
import { FetchHttpClient, HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Cause, Effect, Exit } from "effect"
import { Api } from "./Api.ts"
import { sendIdempotencyKey } from "./Idempotency/Client.ts"

export interface ClientOptions {
  /** Where Parley answers, e.g. `http://localhost:8787`. */
  readonly baseUrl: string
  /** Sent as `Authorization: Bearer …`: an API key (or the admin token, for `admin` routes). */
  readonly apiKey?: string | undefined
}

/**
 * The client: `client.<group>.<endpoint>(request)` returns an Effect that fails with the route's typed
 * errors. A POST made under `withIdempotencyKey(key)` sends that `Idempotency-Key` (retry the same
 * effect to retry safely).
 */
export const makeClient = ({ baseUrl, apiKey }: ClientOptions) =>
  Effect.runSync(
    HttpApiClient.make(Api, {
      baseUrl,
      transformClient: (client) =>
        sendIdempotencyKey(
          apiKey === undefined
            ? client
            : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(apiKey)),
        ),
    }).pipe(Effect.provide(FetchHttpClient.layer)),
  )

export type Client = ReturnType<typeof makeClient>

/**
 * Runs a client call as a Promise: resolves with the success, rejects with the failure itself (the
 * decoded error class, e.g. `VoiceSessionNotFound` with its `message` and `request_id`, or the
 * transport error) rather than a wrapper.
 */
export const run = <A, E>(call: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromiseExit(call).then((exit) =>
    Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause)),
  )

/** The error classes failures are decoded into (for `instanceof`, or `_tag` with `Effect.catchTag`). */
export {
  ApiKeyNotFound,
  IdempotencyKeyInUse,
  IdempotencyKeyReused,
  InternalError,
  InvalidApiKey,
  InvalidAuthorizationScheme,
  InvalidJson,
  InvalidRequest,
  InvalidRequestBody,
  MethodNotAllowed,
  MissingAuthorizationHeader,
  MissingBearerToken,
  OrganizationNotFound,
  PayloadTooLarge,
  RateLimited,
  RequestHeaderFieldsTooLarge,
  RequestTimeout,
  RouteNotFound,
  ServiceUnavailable,
  UnsupportedMediaType,
  VoiceAgentNotFound,
  VoiceGeminiEphemeralFailed,
  VoiceLiveKitFailed,
  VoiceResultExtractionFailed,
  VoiceSessionNotActive,
  VoiceSessionNotFound,
  VoiceSessionTtlTooShort,
  WebhookDeliveryNotFound,
  WebhookEndpointNotFound,
  WebhookUrlNotAllowed,
  WebhookVerificationFailed,
} from "./Domain/Errors.ts"
export type { Session } from "./Domain/Session.ts"
export type { SessionList, SessionListItem } from "./Domain/SessionList.ts"
export { withIdempotencyKey } from "./Idempotency/Client.ts"
