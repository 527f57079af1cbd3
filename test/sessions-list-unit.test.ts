/** The in-memory listing (unit tests' SessionsRepo.Test) pages and filters as PostgreSQL does. */
import { describe, expect, test } from "bun:test"
import { Effect, Option } from "effect"
import type { SessionStatus } from "../src/Domain/Session.ts"
import type { PageQuery } from "../src/Sessions/ListQuery.ts"
import { SessionsRepo } from "../src/Sessions/Repo.ts"

const ORG = "0b5c7c0e-2f7e-4f4e-9a59-6f7d3f0d0a01"
const OTHER = "0b5c7c0e-2f7e-4f4e-9a59-6f7d3f0d0a02"
const AGENTS = ["a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"]
const at = (second: number) => new Date(Date.UTC(2026, 10, 1, 12, 0, second))

/** Seeds sessions (ids in random order, several per timestamp), then runs `body` on the repository. */
const withRepo = <A, E>(
  body: (repo: SessionsRepo["Type"], ids: ReadonlyArray<string>) => Effect.Effect<A, E>,
) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const repo = yield* SessionsRepo
      const ids: Array<string> = []
      for (let i = 0; i < 17; i++) {
        const id = crypto.randomUUID()
        ids.push(id)
        yield* repo.insert({
          id,
          org_id: i === 16 ? OTHER : ORG,
          agent_id: AGENTS[i % 2],
          participant: { identity: "seeded" },
          context: null,
          system_instruction: "seeded",
          max_duration_seconds: null,
          created_at: at(Math.floor(i / 4)),
          expires_at: at(3600),
        })
      }
      return yield* body(repo, ids)
    }).pipe(Effect.provide(SessionsRepo.Test)),
  )

const pages = (repo: SessionsRepo["Type"], q: Omit<PageQuery, "orgId" | "transcripts">) =>
  Effect.gen(function* () {
    const out: Array<string> = []
    let cursor: string | undefined
    for (;;) {
      const page = yield* repo.list({ ...q, orgId: ORG, transcripts: false, startingAfter: cursor })
      const { sessions, hasMore } = Option.getOrThrow(page)
      out.push(...sessions.map((x) => x.session_id))
      if (!hasMore) return out
      cursor = sessions.at(-1)?.session_id
    }
  })

/** (created_at desc, id desc), as the index orders them. */
const ordered = (ids: ReadonlyArray<string>, keep: (i: number) => boolean) =>
  ids
    .map((id, i) => ({ id, i, t: at(Math.floor(i / 4)).getTime() }))
    .filter(({ i }) => i !== 16 && keep(i))
    .sort((a, b) => b.t - a.t || (a.id < b.id ? 1 : -1))
    .map(({ id }) => id)

describe("SessionsRepo.Test list", () => {
  test("pages of 3 in (created_at, id) order, equal timestamps included; another org's cursor is None", () =>
    withRepo((repo, ids) =>
      Effect.gen(function* () {
        expect(yield* pages(repo, { limit: 3 })).toEqual(ordered(ids, () => true))
        expect(yield* pages(repo, { limit: 3, agentId: AGENTS[1] })).toEqual(ordered(ids, (i) => i % 2 === 1))
        expect(yield* pages(repo, { limit: 2, createdAfter: at(1), createdBefore: at(3) })).toEqual(
          ordered(ids, (i) => i >= 4 && i < 12),
        )
        const none: ReadonlyArray<SessionStatus> = ["completed"]
        expect(yield* pages(repo, { limit: 5, statuses: none })).toEqual([])
        const foreign = yield* repo.list({ orgId: ORG, limit: 3, transcripts: false, startingAfter: ids[16] })
        expect(Option.isNone(foreign)).toBeTrue()
      }),
    ))
})
