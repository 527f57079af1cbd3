import { HttpApiMiddleware, HttpApiSecurity, HttpServerRequest } from "@effect/platform"
import { Context, Effect, FiberRef, Layer, Option, Redacted, Schema } from "effect"
import { globalValue } from "effect/GlobalValue"
import { AppConfig } from "../Config.ts"
import {
  InvalidApiKey,
  InvalidAuthorizationScheme,
  MissingAuthorizationHeader,
  MissingBearerToken,
  RateLimited,
  RouteNotFound,
  ServiceUnavailable,
  wire,
} from "../Domain/Errors.ts"
import type { OrgId } from "../Domain/Ids.ts"
import { clientAddress } from "../Http/BunServer.ts"
import { Limits } from "../Limits.ts"
import { ApiKeys, hashKey } from "./ApiKeys.ts"

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
  failure: Schema.Union(...authErrors, wire(RateLimited), wire(ServiceUnavailable)),
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

/**
 * A request's API key, found valid by `authenticate` before anything read the request's body (a
 * FiberRef of the request's own fiber: setting it costs less than providing a service).
 */
export const CurrentAuthentication = globalValue("Parley/CurrentAuthentication", () =>
  FiberRef.unsafeMake<Option.Option<{ readonly orgId: OrgId; readonly keyHash: string }>>(Option.none()),
)

/**
 * The organization of the request's API key, within the fairness limits: an address that failed
 * too often is refused before its key is looked up, and each key gets its request rate.
 */
export const authenticateWith = (keys: ApiKeys["Type"], limits: Limits["Type"]) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const token = yield* bearerToken
    const address = () => Option.getOrElse(clientAddress(request), () => "unknown")
    yield* limits.checkAddress(address)
    const keyHash = hashKey(token)
    const orgId = yield* keys.authenticate(token, keyHash)
    if (Option.isNone(orgId)) {
      yield* limits.failedAuth(address())
      return yield* new InvalidApiKey({ message: "Invalid or revoked API key." })
    }
    yield* limits.takeRequest(keyHash)
    return { orgId: orgId.value, keyHash }
  })

export const AuthenticatedLive = Layer.effect(
  Authenticated,
  Effect.map(Effect.all([ApiKeys, Limits]), ([keys, limits]) =>
    Authenticated.of({
      // Http.ts authenticates every API-key route before reading its body; this is the fallback.
      bearer: () =>
        Effect.flatMap(FiberRef.get(CurrentAuthentication), (found) =>
          Option.match(found, {
            onSome: ({ orgId }) => Effect.succeed({ orgId }),
            onNone: () => Effect.map(authenticateWith(keys, limits), ({ orgId }) => ({ orgId })),
          }),
        ),
    }),
  ),
)

const constantTimeEqual = (a: string, b: string): boolean => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && crypto.timingSafeEqual(x, y)
}

/** The admin token check (the admin API is not there without ADMIN_TOKEN). */
export const authenticateAdminWith = (adminToken: Option.Option<Redacted.Redacted<string>>) =>
  Effect.gen(function* () {
    if (Option.isNone(adminToken)) return yield* new RouteNotFound({ message: "Not found." })
    const token = yield* bearerToken
    if (!constantTimeEqual(token, Redacted.value(adminToken.value)))
      return yield* new InvalidApiKey({ message: "Invalid admin token." })
  })

export const AdminAuthenticatedLive = Layer.effect(
  AdminAuthenticated,
  Effect.map(AppConfig, ({ adminToken }) =>
    // Http.ts has already checked it before reading the body; cheap enough to check again here.
    AdminAuthenticated.of({ adminBearer: () => authenticateAdminWith(adminToken) }),
  ),
)
