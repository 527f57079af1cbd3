import { Api } from "../Api.ts"
import { InvalidRequest, MethodNotAllowed, RouteNotFound } from "../Domain/Errors.ts"

const routes = [
  ...Object.values(Api.groups).flatMap((group) =>
    Object.values(group.endpoints).map((e) => ({ method: e.method as string, path: e.path as string })),
  ),
  { method: "GET", path: "/openapi.json" },
  { method: "GET", path: "/docs" },
].map(({ method, path }) => ({
  method,
  path,
  pattern: new RegExp(`^${path.replace(/:[^/]+/g, "[^/]+")}/?$`),
}))

/** Methods served on `pathname` (empty when no route matches it). */
export const allowedMethods = (pathname: string, adminEnabled: boolean): ReadonlyArray<string> => [
  ...new Set(
    routes
      .filter((r) => r.pattern.test(pathname) && (adminEnabled || !r.path.startsWith("/admin/")))
      .map((r) => r.method),
  ),
]

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
