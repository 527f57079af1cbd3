/** One embedded PostgreSQL per `bun test` process (all test files share the process), started lazily. */
import { mkdtemp } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import { ensureDatabase } from "../../src/Sql/Client.ts"
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/Sql/EmbeddedPostgres.ts"
import { sqlLayer } from "../../src/Sql.ts"

let server: Promise<EmbeddedPostgres> | undefined

const start = async (): Promise<EmbeddedPostgres> => {
  const root = await mkdtemp("/tmp/parley-test-pg-")
  const scope = Effect.runSync(Scope.make())
  const pg = await Effect.runPromise(
    startEmbeddedPostgres({ dir: join(root, "pg"), ephemeral: true }).pipe(
      Scope.extend(scope),
      Effect.tap((pg) => ensureDatabase(pg.adminUrl, "parley_test")),
      Effect.tapErrorCause(() => Scope.close(scope, Exit.void)),
    ),
  )
  watchdogs.push(stopWhenWeDie(pg, root))
  return pg
}

/** `bun test` exits without emitting "exit"/"beforeExit" and never closes our scope, so a detached
 * shell waits for EOF on a pipe from this process (closed by the kernel however we die, even
 * SIGKILL), then stops postgres and removes the directory. */
const stopWhenWeDie = (pg: EmbeddedPostgres, root: string) => {
  // SIGQUIT: immediate shutdown, the data is thrown away; postgres deletes postmaster.pid last
  const script = `trap '' INT TERM HUP; read _; kill -QUIT ${pg.pid}; i=0
    while [ -e '${pg.dir}/postmaster.pid' ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done; rm -rf '${root}'`
  const child = Bun.spawn(["sh", "-c", script], { stdin: "pipe", stdout: "ignore", stderr: "ignore" })
  child.unref()
  return child
}
const watchdogs: Array<Bun.Subprocess> = [] // held so the pipe is never collected

export const testPostgres = (): Promise<EmbeddedPostgres> => {
  server ??= start()
  return server
}

/** URL of the shared test database (migrated once TestSqlLayer has been built). */
export const testDatabaseUrl = async (): Promise<string> =>
  Redacted.value((await testPostgres()).url("parley_test"))

/** A new, empty database on the shared server, for tests that need isolation. */
export const freshDatabaseUrl = async (): Promise<string> => {
  const pg = await testPostgres()
  const name = `t_${crypto.randomUUID().replaceAll("-", "")}`
  await Effect.runPromise(ensureDatabase(pg.adminUrl, name))
  return Redacted.value(pg.url(name))
}

/** The pool on `url` with migrations applied, as the server builds it for DATABASE_URL. */
export const sqlLayerFor = (url: string) => sqlLayer(Redacted.make(url))

export const TestSqlLayer = Layer.unwrapEffect(Effect.promise(testDatabaseUrl).pipe(Effect.map(sqlLayerFor)))
