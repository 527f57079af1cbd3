import { HttpApiMiddleware, HttpApiSecurity, HttpServerRequest } from "@effect/platform"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { AppConfig } from "../Config.ts"
import {
  InvalidApiKey,
  InvalidAuthorizationScheme,
  MissingAuthorizationHeader,
  MissingBearerToken,
  RouteNotFound,
  ServiceUnavailable,
  wire,
} from "../Domain/Errors.ts"
import type { OrgId } from "../Domain/Ids.ts"
import { ApiKeys } from "./ApiKeys.ts"

/** The organization the request's API key belongs to; every query is scoped by it. */
export class CurrentOrg extends Context.Tag("Parley/CurrentOrg")<CurrentOrg, { readonly orgId: OrgId }>() {}

const authErrors = [
  wire(MissingAuthorizationHeader),
  wire(InvalidAuthorizationScheme),
  wire(MissingBearerToken),
  wire(InvalidApiKey),
] as const

export class Authenticated extends HttpApiMiddleware.Tag<Authenticated>()("Parley/Authenticated", {
  provides: CurrentOrg,
  failure: Schema.Union(...authErrors, wire(ServiceUnavailable)),
  security: { bearer: HttpApiSecurity.bearer },
}) {}

export class AdminAuthenticated extends HttpApiMiddleware.Tag<AdminAuthenticated>()(
  "Parley/AdminAuthenticated",
  {
    failure: Schema.Union(...authErrors, wire(RouteNotFound)),
    security: { adminBearer: HttpApiSecurity.bearer },
  },
) {}

/** The token of `Authorization: Bearer <token>`, or the auth error the header deserves. */
const bearerToken = Effect.gen(function* () {
  const header = (yield* HttpServerRequest.HttpServerRequest).headers.authorization?.trim()
  if (!header)
    return yield* new MissingAuthorizationHeader({
      message: "Missing Authorization header. Use Bearer <api_key>.",
    })
  const [scheme, token, ...rest] = header.split(/\s+/)
  if (scheme.toLowerCase() !== "bearer" || rest.length > 0)
    return yield* new InvalidAuthorizationScheme({
      message: "Authorization header must use the Bearer scheme: 'Authorization: Bearer <api key>'.",
    })
  if (!token) return yield* new MissingBearerToken({ message: "Bearer token is empty." })
  return token
})

export const AuthenticatedLive = Layer.effect(
  Authenticated,
  Effect.map(ApiKeys, (keys) =>
    Authenticated.of({
      bearer: () =>
        Effect.gen(function* () {
          const token = yield* bearerToken
          const orgId = yield* keys.authenticate(token)
          if (Option.isNone(orgId))
            return yield* new InvalidApiKey({ message: "Invalid or revoked API key." })
          return { orgId: orgId.value }
        }),
    }),
  ),
)

const constantTimeEqual = (a: string, b: string): boolean => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && crypto.timingSafeEqual(x, y)
}

export const AdminAuthenticatedLive = Layer.effect(
  AdminAuthenticated,
  Effect.map(AppConfig, ({ adminToken }) =>
    AdminAuthenticated.of({
      adminBearer: () =>
        Effect.gen(function* () {
          if (Option.isNone(adminToken)) return yield* new RouteNotFound({ message: "Not found." })
          const token = yield* bearerToken
          if (!constantTimeEqual(token, Redacted.value(adminToken.value)))
            return yield* new InvalidApiKey({ message: "Invalid admin token." })
        }),
    }),
  ),
)
