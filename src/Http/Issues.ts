import type { HttpApiError } from "@effect/platform"
import { InvalidRequest, InvalidRequestBody, type Issue } from "../Domain/Errors.ts"

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    "",
  )

const NOISE = /^Expected (undefined|null), actual /
const LITERAL = /^Expected ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false), actual (.*)$/s

/** At most this many issues are reported; the first ones say what to fix. */
const MAX_ISSUES = 50

/** `a.b[2].c` and every ancestor of it: `a.b[2]`, `a.b`, `a`. */
const withAncestors = (path: string): Array<string> => {
  const out = [path]
  for (let i = path.length - 1; i > 0; i--) if (path[i] === "." || path[i] === "[") out.push(path.slice(0, i))
  return out
}

/**
 * Optional and nullable fields fail as unions, which list every alternative. Keep what the client
 * needs: drop the "Expected undefined/null" alternatives when a real reason exists at or below that
 * path, and fold "Expected "a" | "b" …" alternatives into one "must be one of" issue. Linear in the
 * number of issues, and capped, so a hostile body cannot make the answer expensive.
 */
const readable = (issues: ReadonlyArray<Issue>): Array<Issue> => {
  const explained = new Set<string>()
  for (const issue of issues)
    if (!NOISE.test(issue.message)) for (const p of withAncestors(issue.path)) explained.add(p)
  const out: Array<Issue> = []
  const seen = new Set<string>()
  const literals = new Map<string, { options: Array<string>; actual: string; at: number }>()
  for (const issue of issues) {
    if (out.length >= MAX_ISSUES) break
    if (NOISE.test(issue.message) && (explained.has(issue.path) || (issue.path === "" && explained.size > 0)))
      continue
    const literal = LITERAL.exec(issue.message)
    if (literal) {
      const known = literals.get(issue.path)
      if (known) {
        known.options.push(literal[1])
        out[known.at] = {
          path: issue.path,
          message: `must be one of ${known.options.join(", ")}; got ${known.actual}`,
        }
        continue
      }
      literals.set(issue.path, { options: [literal[1]], actual: literal[2], at: out.length })
    }
    const key = `${issue.path}\u0001${issue.message}`
    if (!seen.has(key)) {
      seen.add(key)
      out.push(issue)
    }
  }
  return out
}

/**
 * Schema issues as the envelope's `issues`, `param` = the first failing path: `invalid_request_body`
 * for the body, `invalid_request` for the path and query.
 */
export const invalidRequest = (
  error: HttpApiError.HttpApiDecodeError,
  part: "body" | "request",
): InvalidRequest | InvalidRequestBody => {
  const issues = readable(
    error.issues.map((i) => ({
      path: formatPath(i.path),
      message:
        i.path.length === 0 && i.message.startsWith("Expected {") ? "must be a JSON object" : i.message,
    })),
  )
  const first = issues[0]
  const what = part === "body" ? "Invalid request body" : "Invalid request"
  const where = first?.path ? `${first.path}: ` : part === "body" ? "" : "request "
  const props = {
    message: first ? `${what}: ${where}${first.message}` : `${what}.`,
    ...(first?.path ? { param: first.path } : {}),
    issues,
  }
  return part === "body" ? new InvalidRequestBody(props) : new InvalidRequest(props)
}
