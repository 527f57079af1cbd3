import { HttpApiSchema } from "@effect/platform"
import { Cause, Effect, FiberRef, ParseResult, Predicate, Record, Schema } from "effect"
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

/**
 * Every client-visible failure is one of these classes. On the wire each one is the single error
 * envelope `{"error": {type, code, message, request_id, param?, issues?}}` (see `wire`).
 */
const ApiError =
  <Self>() =>
  <Tag extends string>(tag: Tag, meta: Meta) => {
    const Tagged = Schema.TaggedError<Self>()(tag, errorFields) as unknown as Schema.TaggedErrorClass<
      Self,
      Tag,
      { readonly _tag: Schema.tag<Tag> } & typeof errorFields
    >
    class Base extends Tagged {
      static readonly meta: Meta = meta
    }
    return Base
  }

export class InvalidRequest extends ApiError<InvalidRequest>()("InvalidRequest", {
  status: 400,
  type: "invalid_request_error",
  code: "invalid_request",
}) {}
export class InvalidRequestBody extends ApiError<InvalidRequestBody>()("InvalidRequestBody", {
  status: 400,
  type: "invalid_request_error",
  code: "invalid_request_body",
}) {}
export class InvalidJson extends ApiError<InvalidJson>()("InvalidJson", {
  status: 400,
  type: "invalid_request_error",
  code: "invalid_json_body",
}) {}
export class VoiceSessionTtlTooShort extends ApiError<VoiceSessionTtlTooShort>()("VoiceSessionTtlTooShort", {
  status: 400,
  type: "invalid_request_error",
  code: "voice_session_ttl_too_short",
}) {}
// A malformed Authorization header is a request error, as in the Pi API; a wrong key is an authentication error.
export class MissingAuthorizationHeader extends ApiError<MissingAuthorizationHeader>()(
  "MissingAuthorizationHeader",
  { status: 401, type: "invalid_request_error", code: "missing_authorization_header" },
) {}
export class InvalidAuthorizationScheme extends ApiError<InvalidAuthorizationScheme>()(
  "InvalidAuthorizationScheme",
  { status: 401, type: "invalid_request_error", code: "invalid_authorization_scheme" },
) {}
export class MissingBearerToken extends ApiError<MissingBearerToken>()("MissingBearerToken", {
  status: 401,
  type: "invalid_request_error",
  code: "missing_bearer_token",
}) {}
export class InvalidApiKey extends ApiError<InvalidApiKey>()("InvalidApiKey", {
  status: 401,
  type: "authentication_error",
  code: "invalid_api_key",
}) {}
export class WebhookVerificationFailed extends ApiError<WebhookVerificationFailed>()(
  "WebhookVerificationFailed",
  { status: 401, type: "authentication_error", code: "webhook_verification_failed" },
) {}
export class VoiceAgentNotFound extends ApiError<VoiceAgentNotFound>()("VoiceAgentNotFound", {
  status: 404,
  type: "not_found_error",
  code: "voice_agent_not_found",
}) {}
export class VoiceSessionNotFound extends ApiError<VoiceSessionNotFound>()("VoiceSessionNotFound", {
  status: 404,
  type: "not_found_error",
  code: "voice_session_not_found",
}) {}
export class OrganizationNotFound extends ApiError<OrganizationNotFound>()("OrganizationNotFound", {
  status: 404,
  type: "not_found_error",
  code: "organization_not_found",
}) {}
export class ApiKeyNotFound extends ApiError<ApiKeyNotFound>()("ApiKeyNotFound", {
  status: 404,
  type: "not_found_error",
  code: "api_key_not_found",
}) {}
export class RouteNotFound extends ApiError<RouteNotFound>()("RouteNotFound", {
  status: 404,
  type: "not_found_error",
  code: "route_not_found",
}) {}
export class MethodNotAllowed extends ApiError<MethodNotAllowed>()("MethodNotAllowed", {
  status: 405,
  type: "invalid_request_error",
  code: "method_not_allowed",
}) {}
export class VoiceSessionNotActive extends ApiError<VoiceSessionNotActive>()("VoiceSessionNotActive", {
  status: 409,
  type: "conflict_error",
  code: "voice_session_not_active",
}) {}
export class PayloadTooLarge extends ApiError<PayloadTooLarge>()("PayloadTooLarge", {
  status: 413,
  type: "invalid_request_error",
  code: "payload_too_large",
}) {}
export class UnsupportedMediaType extends ApiError<UnsupportedMediaType>()("UnsupportedMediaType", {
  status: 415,
  type: "invalid_request_error",
  code: "unsupported_media_type",
}) {}
export class VoiceLiveKitFailed extends ApiError<VoiceLiveKitFailed>()("VoiceLiveKitFailed", {
  status: 502,
  type: "api_error",
  code: "voice_livekit_failed",
}) {}
export class VoiceGeminiEphemeralFailed extends ApiError<VoiceGeminiEphemeralFailed>()(
  "VoiceGeminiEphemeralFailed",
  { status: 502, type: "api_error", code: "voice_gemini_ephemeral_failed" },
) {}
export class VoiceResultExtractionFailed extends ApiError<VoiceResultExtractionFailed>()(
  "VoiceResultExtractionFailed",
  { status: 502, type: "api_error", code: "voice_result_extraction_failed" },
) {}
export class ServiceUnavailable extends ApiError<ServiceUnavailable>()("ServiceUnavailable", {
  status: 503,
  type: "api_error",
  code: "service_unavailable",
}) {}
export class InternalError extends ApiError<InternalError>()("InternalError", {
  status: 500,
  type: "api_error",
  code: "internal_error",
}) {}

type ErrorProps = typeof InternalError extends new (props: infer P) => unknown ? P : never
interface ApiErrorClass<A> extends Schema.Schema.AnyNoContext {
  readonly meta: Meta
  new (props: ErrorProps): A
}
type ApiErrorInstance = Schema.Struct.Type<typeof errorFields>

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

export const isApiError = (u: unknown): u is ApiErrorInstance & { readonly _tag: string } =>
  typeof u === "object" && u !== null && "constructor" in u && "meta" in (u.constructor as object)

/** No statement or transaction of this service legitimately takes longer. */
const DATABASE_TIMEOUT_MS = 10_000

/**
 * Database failures: a lost, refused or unresponsive connection is a 503 the client may retry;
 * anything else (a bad statement, a row its schema rejects) is a bug and becomes a defect.
 */
export const orUnavailable = <A, E, R>(
  self: Effect.Effect<A, E, R>,
): Effect.Effect<A, ServiceUnavailable, R> =>
  Effect.catchAll(Effect.timeout(self, DATABASE_TIMEOUT_MS), (e) => {
    const timedOut = Cause.isTimeoutException(e)
    const sqlError = Predicate.isTagged(e, "SqlError") && Predicate.hasProperty(e, "cause") ? e : undefined
    if (!timedOut && sqlError === undefined) return Effect.die(e)
    const cause = sqlError?.cause
    const code = Predicate.hasProperty(cause, "code") ? cause.code : undefined
    const outage = timedOut || typeof code !== "string" || /^(08|57P|53)/.test(code) || code.startsWith("E")
    if (!outage) return Effect.die(e)
    const reason = timedOut
      ? `no answer within ${DATABASE_TIMEOUT_MS} ms`
      : cause instanceof Error
        ? cause.message
        : String(code)
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
