import { Option, Schema } from "effect"
import { Api } from "../Api.ts"
import { InvalidRequest, MethodNotAllowed, RouteNotFound } from "../Domain/Errors.ts"

interface Route {
  readonly method: string
  readonly path: string
  /** Matches the path; one named group per `:param`. */
  readonly pattern: RegExp
  readonly pathSchema: Option.Option<Schema.Schema.Any>
  readonly hasPayload: boolean
}

const routes: ReadonlyArray<Route> = [
  ...Object.values(Api.groups).flatMap((group) =>
    Object.values(group.endpoints).map((e) => ({
      method: e.method as string,
      path: e.path as string,
      pathSchema: e.pathSchema as Option.Option<Schema.Schema.Any>,
      hasPayload: Option.isSome(e.payloadSchema),
    })),
  ),
  { method: "GET", path: "/", pathSchema: Option.none(), hasPayload: false },
  { method: "GET", path: "/openapi.json", pathSchema: Option.none(), hasPayload: false },
  { method: "GET", path: "/docs", pathSchema: Option.none(), hasPayload: false },
].map((route) => ({
  ...route,
  pattern: new RegExp(`^${route.path.replace(/:([^/]+)/g, "(?<$1>[^/]+)")}/?$`),
}))

/** Recent answers of `allowedMethods` (every request asks; ids make paths many, so it is bounded). */
const allowedCache = new Map<string, ReadonlyArray<string>>()

/** Methods served on `pathname` (empty when no route matches it). */
export const allowedMethods = (pathname: string, adminEnabled: boolean): ReadonlyArray<string> => {
  const key = `${adminEnabled ? "a" : "-"}${pathname}`
  const known = allowedCache.get(key)
  if (known !== undefined) return known
  const methods = [
    ...new Set(
      routes
        .filter((r) => r.pattern.test(pathname) && (adminEnabled || !r.path.startsWith("/admin/")))
        .map((r) => r.method),
    ),
  ]
  if (allowedCache.size >= 1024) allowedCache.clear()
  allowedCache.set(key, methods)
  return methods
}

const decodedParams = (route: Route, pathname: string): Record<string, string> | undefined => {
  try {
    const groups = route.pattern.exec(pathname)?.groups ?? {}
    return Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, decodeURIComponent(v)]))
  } catch {
    return undefined
  }
}

/**
 * Which part of a request its decode failure is about: the body (`invalid_request_body`, as the Pi
 * API names it) or the path and query (`invalid_request`). The path is decoded before the body, so a
 * request with a body blames the body only when its path parameters are valid.
 */
export const failedPart = (method: string, pathname: string): "body" | "request" => {
  const route = routes.find((r) => r.method === method && r.pattern.test(pathname))
  if (route === undefined || !route.hasPayload) return "request"
  if (Option.isNone(route.pathSchema)) return "body"
  const params = decodedParams(route, pathname)
  return params !== undefined && Schema.is(route.pathSchema.value)(params) ? "body" : "request"
}

/**
 * Why the router found nothing: an unknown path (404), a known path with another method (405), or a
 * fitting method on a path whose parameter could not be decoded, such as `%ZZ` (400).
 */
export const routeFailure = (method: string, pathname: string, adminEnabled: boolean) => {
  const allowed = allowedMethods(pathname, adminEnabled)
  if (allowed.length === 0) return new RouteNotFound({ message: `No route for ${method} ${pathname}.` })
  if (allowed.includes(method)) return new InvalidRequest({ message: `Malformed path ${pathname}.` })
  return new MethodNotAllowed({
    message: `${method} is not allowed on ${pathname}; allowed: ${allowed.join(", ")}.`,
  })
}
