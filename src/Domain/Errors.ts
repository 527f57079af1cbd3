import { HttpApiSchema, HttpServerResponse } from "@effect/platform"
import { type Cause, Effect, FiberRef, ParseResult, Predicate, Record, Schema } from "effect"
import { CurrentRequestId } from "./RequestId.ts"

export const ErrorType = Schema.Literal(
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "conflict_error",
  "rate_limit_error",
  "api_error",
)
export type ErrorType = typeof ErrorType.Type

export const Issue = Schema.Struct({ path: Schema.String, message: Schema.String })
export type Issue = typeof Issue.Type

const errorFields = {
  message: Schema.String,
  param: Schema.optional(Schema.String),
  issues: Schema.optional(Schema.Array(Issue)),
  request_id: Schema.optional(Schema.String),
}

interface Meta {
  readonly status: number
  readonly type: ErrorType
  readonly code: string
}

/** Each error's wire identity, `[HTTP status, type, code]`, by its class name (which is its `_tag`). */
const errors = {
  InvalidRequest: [400, "invalid_request_error", "invalid_request"],
  InvalidRequestBody: [400, "invalid_request_error", "invalid_request_body"],
  InvalidJson: [400, "invalid_request_error", "invalid_json_body"],
  VoiceSessionTtlTooShort: [400, "invalid_request_error", "voice_session_ttl_too_short"],
  WebhookUrlNotAllowed: [400, "invalid_request_error", "webhook_url_not_allowed"],
  // A malformed Authorization header is a request error, as in the Pi API; a wrong key is an authentication error.
  MissingAuthorizationHeader: [401, "invalid_request_error", "missing_authorization_header"],
  InvalidAuthorizationScheme: [401, "invalid_request_error", "invalid_authorization_scheme"],
  MissingBearerToken: [401, "invalid_request_error", "missing_bearer_token"],
  InvalidApiKey: [401, "authentication_error", "invalid_api_key"],
  WebhookVerificationFailed: [401, "authentication_error", "webhook_verification_failed"],
  VoiceAgentNotFound: [404, "not_found_error", "voice_agent_not_found"],
  VoiceSessionNotFound: [404, "not_found_error", "voice_session_not_found"],
  OrganizationNotFound: [404, "not_found_error", "organization_not_found"],
  ApiKeyNotFound: [404, "not_found_error", "api_key_not_found"],
  WebhookEndpointNotFound: [404, "not_found_error", "webhook_endpoint_not_found"],
  WebhookDeliveryNotFound: [404, "not_found_error", "webhook_delivery_not_found"],
  RouteNotFound: [404, "not_found_error", "route_not_found"],
  MethodNotAllowed: [405, "invalid_request_error", "method_not_allowed"],
  VoiceSessionNotActive: [409, "conflict_error", "voice_session_not_active"],
  IdempotencyKeyReused: [409, "conflict_error", "idempotency_key_reused"],
  IdempotencyKeyInUse: [409, "conflict_error", "idempotency_key_in_use"],
  PayloadTooLarge: [413, "invalid_request_error", "payload_too_large"],
  UnsupportedMediaType: [415, "invalid_request_error", "unsupported_media_type"],
  RequestTimeout: [408, "invalid_request_error", "request_timeout"],
  RequestHeaderFieldsTooLarge: [431, "invalid_request_error", "request_header_fields_too_large"],
  RateLimited: [429, "rate_limit_error", "rate_limited"],
  VoiceLiveKitFailed: [502, "api_error", "voice_livekit_failed"],
  VoiceGeminiEphemeralFailed: [502, "api_error", "voice_gemini_ephemeral_failed"],
  VoiceResultExtractionFailed: [502, "api_error", "voice_result_extraction_failed"],
  ServiceUnavailable: [503, "api_error", "service_unavailable"],
  InternalError: [500, "api_error", "internal_error"],
} as const satisfies Record<string, readonly [status: number, type: ErrorType, code: string]>

/**
 * Every client-visible failure is one of these classes. On the wire each one is the single error
 * envelope `{"error": {type, code, message, request_id, param?, issues?}}` (see `wire`).
 */
const ApiError = <Tag extends keyof typeof errors>(tag: Tag) => {
  type Fields = { readonly _tag: Schema.tag<Tag> } & typeof errorFields
  // The classes add no members, so this is their instance type: the `Self` Effect's classes take.
  type Self = Schema.Struct.Type<Fields> & Cause.YieldableError
  const Tagged = Schema.TaggedError<Self>()(tag, errorFields) as unknown as Schema.TaggedErrorClass<
    Self,
    Tag,
    Fields
  >
  const [status, type, code] = errors[tag]
  return class extends Tagged {
    static readonly meta: Meta = { status, type, code }
  }
}

export class InvalidRequest extends ApiError("InvalidRequest") {}
export class InvalidRequestBody extends ApiError("InvalidRequestBody") {}
export class InvalidJson extends ApiError("InvalidJson") {}
export class VoiceSessionTtlTooShort extends ApiError("VoiceSessionTtlTooShort") {}
export class MissingAuthorizationHeader extends ApiError("MissingAuthorizationHeader") {}
export class InvalidAuthorizationScheme extends ApiError("InvalidAuthorizationScheme") {}
export class MissingBearerToken extends ApiError("MissingBearerToken") {}
export class InvalidApiKey extends ApiError("InvalidApiKey") {}
export class WebhookVerificationFailed extends ApiError("WebhookVerificationFailed") {}
export class VoiceAgentNotFound extends ApiError("VoiceAgentNotFound") {}
export class VoiceSessionNotFound extends ApiError("VoiceSessionNotFound") {}
export class OrganizationNotFound extends ApiError("OrganizationNotFound") {}
export class ApiKeyNotFound extends ApiError("ApiKeyNotFound") {}
export class WebhookUrlNotAllowed extends ApiError("WebhookUrlNotAllowed") {}
export class WebhookEndpointNotFound extends ApiError("WebhookEndpointNotFound") {}
export class WebhookDeliveryNotFound extends ApiError("WebhookDeliveryNotFound") {}
export class RouteNotFound extends ApiError("RouteNotFound") {}
export class MethodNotAllowed extends ApiError("MethodNotAllowed") {}
export class VoiceSessionNotActive extends ApiError("VoiceSessionNotActive") {}
export class IdempotencyKeyReused extends ApiError("IdempotencyKeyReused") {}
export class IdempotencyKeyInUse extends ApiError("IdempotencyKeyInUse") {}
export class PayloadTooLarge extends ApiError("PayloadTooLarge") {}
export class UnsupportedMediaType extends ApiError("UnsupportedMediaType") {}
export class RequestTimeout extends ApiError("RequestTimeout") {}
export class RequestHeaderFieldsTooLarge extends ApiError("RequestHeaderFieldsTooLarge") {}
export class RateLimited extends ApiError("RateLimited") {}
export class VoiceLiveKitFailed extends ApiError("VoiceLiveKitFailed") {}
export class VoiceGeminiEphemeralFailed extends ApiError("VoiceGeminiEphemeralFailed") {}
export class VoiceResultExtractionFailed extends ApiError("VoiceResultExtractionFailed") {}
export class ServiceUnavailable extends ApiError("ServiceUnavailable") {}
export class InternalError extends ApiError("InternalError") {}

type ErrorProps = typeof InternalError extends new (props: infer P) => unknown ? P : never
export interface ApiErrorClass<A> extends Schema.Schema.AnyNoContext {
  readonly meta: Meta
  new (props: ErrorProps): A
}
export type ApiErrorInstance = Schema.Struct.Type<typeof errorFields>

/** Wire body of one error code: the single envelope every error response uses. */
export const errorBody = (meta: Meta) =>
  Schema.Struct({
    error: Schema.Struct({
      type: Schema.Literal(meta.type),
      code: Schema.Literal(meta.code),
      message: Schema.String,
      request_id: Schema.String,
      param: Schema.optional(Schema.String),
      issues: Schema.optional(Schema.Array(Issue)),
    }),
  })

const wireCache = new WeakMap<object, Schema.Schema.Any>()

/**
 * The schema an endpoint declares for an error class: the class on the server and client side, the
 * envelope on the wire (request id taken from the request being served), with its HTTP status.
 */
export const wire = <A extends ApiErrorInstance>(
  cls: ApiErrorClass<A>,
): Schema.Schema<A, Schema.Schema.Encoded<ReturnType<typeof errorBody>>> => {
  const cached = wireCache.get(cls)
  if (cached) return cached as never
  const { meta } = cls
  const schema = Schema.transformOrFail(errorBody(meta), Schema.typeSchema(cls), {
    strict: false,
    decode: ({ error }) =>
      ParseResult.succeed(
        new cls({
          message: error.message,
          param: error.param,
          issues: error.issues,
          request_id: error.request_id,
        }),
      ),
    encode: (e) =>
      Effect.map(FiberRef.get(CurrentRequestId), (requestId) => ({
        error: {
          type: meta.type,
          code: meta.code,
          message: e.message,
          request_id: e.request_id ?? requestId,
          ...(e.param === undefined ? {} : { param: e.param }),
          ...(e.issues === undefined ? {} : { issues: e.issues }),
        },
      })),
  }).annotations({ ...HttpApiSchema.annotations({ status: meta.status }), identifier: cls.meta.code })
  wireCache.set(cls, schema)
  return schema as never
}

/** An API error as the response the API answers it with: the one envelope, with its status. */
export const errorResponse = (error: ApiErrorInstance) => {
  const cls = error.constructor as ApiErrorClass<ApiErrorInstance>
  return Effect.map(Schema.encode(wire(cls))(error), (body) =>
    HttpServerResponse.unsafeJson(body, { status: cls.meta.status }),
  )
}

export const isApiError = (u: unknown): u is ApiErrorInstance & { readonly _tag: string } =>
  typeof u === "object" && u !== null && "constructor" in u && "meta" in (u.constructor as object)

/**
 * Database failures: a lost, refused or unresponsive connection is a 503 the client may retry;
 * anything else (a bad statement, a row its schema rejects) is a bug and becomes a defect. The
 * deadlines are the driver's (Sql/Client.ts): no free connection in time, a statement cancelled
 * (57014) or a server that does not answer all arrive here as SqlErrors.
 */
export const orUnavailable = <A, E, R>(
  self: Effect.Effect<A, E, R>,
): Effect.Effect<A, ServiceUnavailable, R> =>
  Effect.catchAll(self, (e) => {
    const sqlError = Predicate.isTagged(e, "SqlError") && Predicate.hasProperty(e, "cause") ? e : undefined
    if (sqlError === undefined) return Effect.die(e)
    const cause = sqlError.cause
    const code = Predicate.hasProperty(cause, "code") ? cause.code : undefined
    const outage =
      typeof code !== "string" || code === "57014" || /^(08|57P|53)/.test(code) || code.startsWith("E")
    if (!outage) return Effect.die(e)
    const reason = cause instanceof Error ? cause.message : String(code)
    return Effect.zipRight(
      Effect.logError(`database unavailable: ${reason}`),
      Effect.fail(new ServiceUnavailable({ message: "The database is unavailable; retry later." })),
    )
  })

type Query =
  | Effect.Effect<unknown, unknown, unknown>
  | ((...args: never) => Effect.Effect<unknown, unknown, unknown>)

type Guarded<Q> = Q extends (...args: infer P) => Effect.Effect<infer A, infer _E, infer R>
  ? (...args: P) => Effect.Effect<A, ServiceUnavailable, R>
  : Q extends Effect.Effect<infer A, infer _E, infer R>
    ? Effect.Effect<A, ServiceUnavailable, R>
    : never

/**
 * A repository as its callers see it: `guard` (`orUnavailable` unless told otherwise) applied to every
 * one of its operations (each an effect, or a function returning one), so the only failure a caller
 * can meet is a ServiceUnavailable.
 */
export const repository = <Q extends Record<string, Query>>(
  queries: Q,
  guard: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, ServiceUnavailable, R> = orUnavailable,
): { readonly [K in keyof Q]: Guarded<Q[K]> } =>
  Record.map(queries, (query) =>
    typeof query === "function" ? (...args: Parameters<typeof query>) => guard(query(...args)) : guard(query),
  ) as never
