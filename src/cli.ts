/**
 * Admin CLI: the admin API's operations against DATABASE_URL, or without it against the embedded
 * database the server uses (`$DATA_DIR/pg`; migrations are applied first).
 * Prints JSON on stdout; on failure one line on stderr and a non-zero exit (2 for usage errors).
 */
import { existsSync, readFileSync } from "node:fs"
import { resolve } from "node:path"
import {
  Cause,
  type Context,
  Data,
  Effect,
  Either,
  Exit,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schema,
} from "effect"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { AppConfig, type AppConfigShape } from "./Config.ts"
import { isApiError } from "./Domain/Errors.ts"
import { Text } from "./Domain/Fields.ts"
import { embeddedUrl, SqlLive } from "./Sql.ts"

const USAGE = `usage: npm run cli -- <command>
  org create <name>                    create an organization
  org list                             list organizations
  key create <org_id> [--name <name>]  create an API key (printed once, only its hash is stored)
  key list <org_id>                    list an organization's keys (never the keys themselves)
  key revoke <key_id>                  revoke an API key (effective immediately)
  --version                            print the version
The database is DATABASE_URL, else the embedded one in $DATA_DIR/pg (DATA_DIR defaults to .data).`

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const usage = (message: string) => Effect.fail(new UsageError({ message }))

const decode =
  <A, I>(schema: Schema.Schema<A, I>, rule: string) =>
  (what: string) =>
  (value: string | undefined) =>
    value === undefined
      ? usage(`missing ${what}`)
      : Either.match(Schema.decodeUnknownEither(schema)(value), {
          onLeft: () => usage(`${what} must be ${rule}, got ${JSON.stringify(value)}`),
          onRight: Effect.succeed,
        })

const uuid = decode(Schema.UUID, "a UUID")
const name = decode(Text(1, 200), "1-200 characters")

/** `--name n` or `--name=n`; anything else left over is a usage error. */
const nameOption = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    if (args.length === 0) return null
    const [flag, value, ...rest] = args
    if (flag.startsWith("--name=") && args.length === 1) return yield* name("--name")(flag.slice(7))
    if (flag === "--name" && rest.length === 0) return yield* name("--name")(value)
    return yield* usage(`unexpected arguments: ${args.join(" ")}`)
  })

const noMore = (args: ReadonlyArray<string>) =>
  args.length === 0 ? Effect.void : usage(`unexpected arguments: ${args.join(" ")}`)

/** An operation on the API keys service, its result printed as JSON. */
type Command = Effect.Effect<unknown, unknown, ApiKeys>
const withKeys = (f: (keys: Context.Tag.Service<ApiKeys>) => Effect.Effect<unknown, unknown>): Command =>
  Effect.flatMap(ApiKeys, f)

/** The command for `argv`, checked before anything touches the database. */
const parse = (argv: ReadonlyArray<string>): Effect.Effect<Command, UsageError> =>
  Effect.gen(function* () {
    const [group, action, first, ...rest] = argv
    const command = `${group ?? ""} ${action ?? ""}`.trim()
    switch (command) {
      case "org create": {
        const orgName = yield* name("organization name")(first)
        yield* noMore(rest)
        return withKeys((keys) => keys.createOrg(orgName))
      }
      case "org list":
        yield* noMore(argv.slice(2))
        return withKeys((keys) => keys.listOrgs)
      case "key create": {
        const orgId = yield* uuid("org_id")(first)
        const keyName = yield* nameOption(rest)
        return withKeys((keys) => keys.createKey(orgId, keyName))
      }
      case "key list": {
        const orgId = yield* uuid("org_id")(first)
        yield* noMore(rest)
        return withKeys((keys) => keys.listKeys(orgId))
      }
      case "key revoke": {
        const keyId = yield* uuid("key_id")(first)
        yield* noMore(rest)
        return withKeys((keys) => keys.revokeKey(keyId))
      }
      default:
        return yield* usage(command === "" ? "missing command" : `unknown command: ${command}`)
    }
  })

/** DATABASE_URL, or the server's embedded database (started for the command if no server runs it). */
const databaseLayer = (config: AppConfigShape) =>
  ApiKeys.Live.pipe(
    Layer.provideMerge(
      Option.isSome(config.databaseUrl)
        ? SqlLive
        : Layer.unwrapScoped(
            Effect.map(embeddedUrl(config.dataDir), (url) =>
              SqlLive.pipe(Layer.provide(AppConfig.layer({ ...config, databaseUrl: Option.some(url) }))),
            ),
          ),
    ),
    Layer.provide(AppConfig.layer(config)),
  )

const VERSION: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

/** One line for whatever went wrong. */
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))
  if (isApiError(error)) return error.message
  if (
    typeof error === "object" &&
    error !== null &&
    "message" in error &&
    typeof error.message === "string"
  ) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : ""
    const what = ["SqlError", "MigrationError", "EmbeddedPostgresError"].includes(tag)
      ? "database error: "
      : tag
        ? `${tag}: `
        : ""
    return `${what}${error.message}`.split("\n")[0]
  }
  return String(error).split("\n")[0]
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  if (argv.length === 1 && argv[0] === "--version") {
    console.log(VERSION)
    return 0
  }
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h") || argv[0] === "help") {
    console.log(USAGE)
    return argv.length === 0 ? 2 : 0
  }
  const parsed = await Effect.runPromise(Effect.either(parse(argv)))
  if (Either.isLeft(parsed)) {
    console.error(`error: ${parsed.left.message}\n${USAGE}`)
    return 2
  }
  // the server's configuration (DATABASE_URL, DATA_DIR), validated as the server does
  const config = await Effect.runPromise(Effect.either(Effect.provide(AppConfig, AppConfig.Live)))
  if (Either.isLeft(config)) {
    console.error(`error: invalid configuration: ${String(config.left).replace(/^\(|\)$/g, "")}`)
    return 1
  }
  const { databaseUrl, dataDir } = config.right
  if (Option.isNone(databaseUrl) && !existsSync(resolve(dataDir, "pg"))) {
    console.error(
      `error: no database: set DATABASE_URL, or run \`npm start\` once to create the embedded one in ${resolve(dataDir, "pg")}`,
    )
    return 1
  }
  const exit = await Effect.runPromiseExit(
    parsed.right.pipe(Effect.provide(databaseLayer(config.right)), Logger.withMinimumLogLevel(LogLevel.None)),
  )
  if (Exit.isFailure(exit)) {
    console.error(`error: ${describe(exit.cause)}`)
    return 1
  }
  console.log(JSON.stringify(exit.value, null, 2))
  return 0
}

process.exit(await main(process.argv.slice(2)))
