import type { HttpApiError } from "@effect/platform"
import { InvalidRequest, type Issue } from "../Domain/Errors.ts"

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    "",
  )

const NOISE = /^Expected (undefined|null), actual /
const LITERAL = /^Expected ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false), actual (.*)$/s

/**
 * Optional and nullable fields fail as unions, which list every alternative. Keep what the client
 * needs: drop the "Expected undefined/null" alternatives when a real reason exists at or below that
 * path, and fold "Expected "a" | "b" …" alternatives into one "must be one of" issue.
 */
const readable = (issues: ReadonlyArray<Issue>): Array<Issue> => {
  const out: Array<Issue> = []
  const literals = new Map<string, { options: Array<string>; actual: string; at: number }>()
  for (const issue of issues) {
    if (
      NOISE.test(issue.message) &&
      issues.some(
        (o) =>
          o !== issue &&
          !NOISE.test(o.message) &&
          (o.path === issue.path ||
            o.path.startsWith(`${issue.path}.`) ||
            o.path.startsWith(`${issue.path}[`) ||
            issue.path === ""),
      )
    )
      continue
    const literal = LITERAL.exec(issue.message)
    if (literal) {
      const seen = literals.get(issue.path)
      if (seen) {
        seen.options.push(literal[1])
        out[seen.at] = {
          path: issue.path,
          message: `must be one of ${seen.options.join(", ")}; got ${seen.actual}`,
        }
        continue
      }
      literals.set(issue.path, { options: [literal[1]], actual: literal[2], at: out.length })
    }
    if (!out.some((o) => o.path === issue.path && o.message === issue.message)) out.push(issue)
  }
  return out
}

/** Schema issues as the envelope's `issues`, `param` = the first failing path. */
export const invalidRequest = (error: HttpApiError.HttpApiDecodeError): InvalidRequest => {
  const issues = readable(
    error.issues.map((i) => ({
      path: formatPath(i.path),
      message:
        i.path.length === 0 && i.message.startsWith("Expected {") ? "must be a JSON object" : i.message,
    })),
  )
  const first = issues[0]
  const where = first?.path ? `${first.path}: ` : "request body "
  return new InvalidRequest({
    message: first ? `Invalid request: ${where}${first.message}` : "Invalid request.",
    ...(first?.path ? { param: first.path } : {}),
    issues,
  })
}
