/** `npm run cli` (bun src/cli.ts): organizations and API keys against DATABASE_URL or the embedded
 * database in $DATA_DIR/pg (SPEC §4). */
import { beforeAll, describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect, Exit, Scope } from "effect"
import { hashKey } from "../src/Auth/ApiKeys.ts"
import { ensureDatabase } from "../src/Sql/Client.ts"
import { startEmbeddedPostgres } from "../src/Sql/EmbeddedPostgres.ts"
import { freshDatabaseUrl, sqlLayerFor } from "./support/db.ts"

const ROOT = join(import.meta.dir, "..")

const cli = async (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}) => {
  const { DATABASE_URL: _, ...inherited } = process.env
  const proc = Bun.spawn([process.execPath, "src/cli.ts", ...args], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdout: "pipe",
    stderr: "pipe",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { code, stdout, stderr }
}

let url: string
const db = <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, f).pipe(Effect.provide(sqlLayerFor(url))) as Effect.Effect<A>,
  )

beforeAll(async () => {
  url = await freshDatabaseUrl()
})

const ok = async (args: ReadonlyArray<string>) => {
  const res = await cli(args, { DATABASE_URL: url })
  expect(res.stderr).toBe("")
  expect(res.code).toBe(0)
  return JSON.parse(res.stdout)
}

/** One line on stderr, nothing on stdout, the given exit code. */
const fails = async (
  args: ReadonlyArray<string>,
  code: number,
  env: Record<string, string> = { DATABASE_URL: url },
) => {
  const res = await cli(args, env)
  expect(res.code).toBe(code)
  expect(res.stdout).toBe("")
  const [first] = res.stderr.split("\n")
  expect(first).toStartWith("error: ")
  expect(res.stderr).not.toMatch(/\bat \S+ \(|\.ts:\d+/)
  return first
}

describe("cli", () => {
  test("--version; without DATABASE_URL nor an embedded database → exit 1 with one line", async () => {
    const version = await cli(["--version"])
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"))
    expect(version).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: "" })
    const dataDir = mkdtempSync(join(tmpdir(), "parley-cli-"))
    try {
      const line = await fails(["org", "list"], 1, { DATA_DIR: dataDir })
      expect(line).toBe(
        `error: no database: set DATABASE_URL, or run \`npm start\` once to create the embedded one in ${join(dataDir, "pg")}`,
      )
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })

  test("without DATABASE_URL: the embedded database a server runs, or started for the command", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "parley-cli-"))
    const dir = join(dataDir, "pg")
    const scope = Effect.runSync(Scope.make())
    try {
      // what `npm start` leaves running: the cluster in $DATA_DIR/pg with a `parley` database
      const pg = await Effect.runPromise(
        startEmbeddedPostgres({ dir, ephemeral: true }).pipe(
          Scope.extend(scope),
          Effect.tap((pg) => ensureDatabase(pg.adminUrl, "parley")),
        ),
      )
      const org = JSON.parse((await cli(["org", "create", "Embedded"], { DATA_DIR: dataDir })).stdout)
      expect(org.name).toBe("Embedded")
      expect(existsSync(join(dir, "postmaster.pid"))).toBe(true)
      expect(pg.pid).toBe(Number.parseInt(readFileSync(join(dir, "postmaster.pid"), "utf8"), 10))

      // the server has stopped: the command starts the cluster and stops it again
      await Effect.runPromise(Scope.close(scope, Exit.void))
      expect(existsSync(join(dir, "postmaster.pid"))).toBe(false)
      const listed = await cli(["org", "list"], { DATA_DIR: dataDir })
      expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: "" })
      expect(JSON.parse(listed.stdout)).toEqual([org])
      expect(existsSync(join(dir, "postmaster.pid"))).toBe(false)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 120_000) // two embedded PostgreSQL starts (initdb included) on a possibly busy machine

  test("usage errors exit 2 with one readable line and where to find the usage", async () => {
    const [help, completions] = await Promise.all([cli(["--help"]), cli(["--completions", "bash"])])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("key revoke <key_id>")
    expect(help.stdout).toContain("key create [--name name] <org_id>")
    expect(help.stdout).not.toContain("\u001b[") // plain text when not on a terminal
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("complete -F _parley_bash_completions")
    const long = "x".repeat(201)
    const cases = [
      [[], "missing command: use one of 'org', 'key'"],
      [["org"], "missing command: use one of 'create', 'list'"],
      [["frobnicate"], "Invalid subcommand for parley - use one of 'org', 'key'"],
      [["org", "create"], "Missing argument <name>"],
      [["org", "create", "   "], "name: must not be empty"],
      [["org", "list", "extra"], "Received unknown argument: 'extra'"],
      [["key", "create", "not-a-uuid"], "org_id: must be a UUID"],
      [["key", "create", crypto.randomUUID(), "--nom", "x"], "Received unknown argument: '--nom'"],
      [["key", "create", crypto.randomUUID(), "--name"], "Received unknown argument: '--name'"],
      [["key", "create", crypto.randomUUID(), "--name", long], "--name: must be at most 200 characters"],
      [["key", "list"], "Missing argument <org_id>"],
      [["key", "revoke", "123"], "key_id: "],
    ] as const
    const results = await Promise.all(cases.map(([args]) => cli(args, { DATABASE_URL: url })))
    for (const [i, [args, message]] of cases.entries()) {
      const res = results[i]
      expect({ args, code: res.code, stdout: res.stdout }).toEqual({ args, code: 2, stdout: "" })
      const [first, hint, ...rest] = res.stderr.split("\n")
      expect(first).toStartWith(`error: ${message}`)
      expect(hint).toBe("Run `npm run cli -- --help` for usage.")
      expect(rest.join("")).toBe("")
    }
  })

  test("org create / org list / key create / key list / key revoke", async () => {
    const org = await ok(["org", "create", "  Acme CLI  "])
    expect(Object.keys(org).sort()).toEqual(["created_at", "name", "org_id"])
    expect(org.name).toBe("Acme CLI")
    expect(await db((s) => s`SELECT name FROM organizations WHERE id = ${org.org_id}`)).toEqual([
      { name: "Acme CLI" },
    ])

    const orgs = await ok(["org", "list"])
    expect(orgs.find((o: { org_id: string }) => o.org_id === org.org_id)).toEqual(org)

    const key = await ok(["key", "create", org.org_id, "--name", "deploy"])
    expect(Object.keys(key).sort()).toEqual(["api_key", "created_at", "key_id", "prefix"])
    expect(key.api_key).toMatch(/^pk_live_[0-9A-Za-z]{32,}$/)
    const [row] = await db((s) => s<Record<string, unknown>>`SELECT * FROM api_keys WHERE id = ${key.key_id}`)
    expect(row).toMatchObject({
      org_id: org.org_id,
      name: "deploy",
      key_hash: hashKey(key.api_key),
      revoked_at: null,
    })
    expect(JSON.stringify(row)).not.toContain(key.api_key.slice(key.prefix.length))

    const unnamed = await ok(["key", "create", org.org_id, "--name=ci"])
    expect(unnamed.api_key).not.toBe(key.api_key)

    const listed = await ok(["key", "list", org.org_id])
    expect(listed.map((k: { key_id: string }) => k.key_id)).toEqual([unnamed.key_id, key.key_id])
    expect(listed[1]).toEqual({
      key_id: key.key_id,
      name: "deploy",
      prefix: key.prefix,
      created_at: key.created_at,
      revoked_at: null,
    })
    expect(listed[0].name).toBe("ci")
    expect(JSON.stringify(listed)).not.toContain(key.api_key)

    expect(await ok(["key", "revoke", key.key_id])).toEqual({ key_id: key.key_id, revoked: true })
    const [revoked] = await db(
      (s) => s<{ revoked_at: Date | null }>`SELECT revoked_at FROM api_keys WHERE id = ${key.key_id}`,
    )
    expect(revoked.revoked_at).toBeInstanceOf(Date)
    const after = await ok(["key", "list", org.org_id])
    expect(Number.isInteger(after[1].revoked_at)).toBe(true)
    expect(after[0].revoked_at).toBeNull()
  })

  test("unknown organization or key → exit 1 with one line", async () => {
    const id = crypto.randomUUID()
    const [create, list, revoke] = await Promise.all([
      fails(["key", "create", id], 1),
      fails(["key", "list", id], 1),
      fails(["key", "revoke", id], 1),
    ])
    expect(create).toBe(`error: No organization with id ${id}.`)
    expect(list).toBe(`error: No organization with id ${id}.`)
    expect(revoke).toBe(`error: No API key with id ${id}.`)
    expect(
      await db((s) => s<{ n: number }>`SELECT count(*)::int AS n FROM api_keys WHERE org_id = ${id}`),
    ).toEqual([{ n: 0 }])
  })

  test("an unreachable database → exit 1 with one line", async () => {
    const line = await fails(["org", "list"], 1, {
      DATABASE_URL: "postgres://nobody:nothing@127.0.0.1:1/none",
    })
    expect(line).toBe("error: database error: PgClient: Failed to connect")
  })

  test("configured as the server is: an invalid variable → exit 1 naming it", async () => {
    const line = await fails(["org", "list"], 1, { DATABASE_URL: url, PORT: "eighty" })
    expect(line).toStartWith("error: invalid configuration: ")
    expect(line).toContain("PORT")
  })
})
