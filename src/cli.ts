/**
 * Admin CLI (`npm run cli -- <command>`): the admin API's operations against DATABASE_URL, or
 * without it against the embedded database the server uses (`$DATA_DIR/pg`; migrations are applied
 * first). JSON on stdout; on failure one line on stderr and exit 1, on a usage error exit 2.
 */
import { existsSync, readFileSync } from "node:fs"
import { resolve } from "node:path"
import { Args, CliConfig, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { BunContext, BunRuntime } from "@effect/platform-bun"
import { MigrationError } from "@effect/sql/Migrator"
import { SqlError } from "@effect/sql/SqlError"
import {
  Cause,
  ConfigError,
  Console,
  type Context,
  Data,
  Effect,
  Exit,
  Layer,
  Logger,
  LogLevel,
  Option,
  ParseResult,
  Schema,
} from "effect"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { AppConfig } from "./Config.ts"
import { ApiKey } from "./Domain/ApiKey.ts"
import { Text } from "./Domain/Fields.ts"
import { OrgId } from "./Domain/Ids.ts"
import { EmbeddedPostgresError } from "./Sql/EmbeddedPostgres.ts"
import { embeddedDatabaseUrl, sqlLayer } from "./Sql.ts"

const VERSION: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

// ---- the database ---------------------------------------------------------------------------------

class NoDatabase extends Data.TaggedError("NoDatabase")<{ readonly message: string }> {}

/** ApiKeys on DATABASE_URL, or on the server's embedded database (started for the command if no
 * server runs it); configured as the server is. Built only when a command runs. */
const DatabaseLive = ApiKeys.Live.pipe(
  Layer.provide(
    Layer.unwrapScoped(
      Effect.gen(function* () {
        const config = yield* AppConfig
        if (Option.isSome(config.databaseUrl)) return sqlLayer(config.databaseUrl.value)
        const dir = resolve(config.dataDir, "pg")
        if (!existsSync(dir))
          return yield* new NoDatabase({
            message: `no database: set DATABASE_URL, or run \`npm start\` once to create the embedded one in ${dir}`,
          })
        return sqlLayer(yield* embeddedDatabaseUrl(config.dataDir))
      }),
    ),
  ),
  Layer.provide(AppConfig.Live),
)

/** An operation of the API keys service, its result printed as JSON. */
const printed = <A, E>(operation: (keys: Context.Tag.Service<ApiKeys>) => Effect.Effect<A, E>) =>
  Effect.flatMap(ApiKeys, operation).pipe(
    Effect.flatMap((result) => Console.log(JSON.stringify(result, null, 2))),
    Effect.provide(DatabaseLive),
  )

// ---- arguments: decoded by the Domain schemas, so the CLI accepts what the admin API accepts -------

/** The first issue's message, naming the argument: `org_id: must be a UUID`. */
const decodeAs =
  <A>(name: string, schema: Schema.Schema<A, string>) =>
  (value: string) =>
    Schema.decode(schema)(value).pipe(
      Effect.mapError((error) =>
        HelpDoc.p(
          `${name}: ${ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "is invalid"}`,
        ),
      ),
    )

const Name = Text(1, 200)

const orgName = Args.text({ name: "name" }).pipe(
  Args.mapEffect(decodeAs("name", Name)),
  Args.withDescription("1-200 characters, trimmed"),
)
const orgId = Args.text({ name: "org_id" }).pipe(Args.mapEffect(decodeAs("org_id", OrgId)))
const keyId = Args.text({ name: "key_id" }).pipe(Args.mapEffect(decodeAs("key_id", ApiKey.fields.key_id)))
const keyName = Options.text("name").pipe(
  Options.mapEffect((value) =>
    Effect.mapError(decodeAs("--name", Name)(value), ValidationError.invalidValue),
  ),
  Options.withPseudoName("name"),
  Options.optional,
  Options.withDescription("a label for the key, 1-200 characters"),
)

// ---- commands --------------------------------------------------------------------------------------

/** A group without its command (`org`) is a usage error, printed as @effect/cli prints its own. */
const missingCommand = (names: ReadonlyArray<string>) => () => {
  const error = HelpDoc.p(`missing command: use one of ${names.map((n) => `'${n}'`).join(", ")}`)
  return Console.error(HelpDoc.toAnsiText(error)).pipe(
    Effect.zipRight(Effect.fail(ValidationError.missingSubcommand(error))),
  )
}

const org = Command.make("org", {}, missingCommand(["create", "list"])).pipe(
  Command.withDescription("organizations"),
  Command.withSubcommands([
    Command.make("create", { name: orgName }, ({ name }) => printed((keys) => keys.createOrg(name))).pipe(
      Command.withDescription("create an organization"),
    ),
    Command.make("list", {}, () => printed((keys) => keys.listOrgs)).pipe(
      Command.withDescription("list organizations, newest first"),
    ),
  ]),
)

const key = Command.make("key", {}, missingCommand(["create", "list", "revoke"])).pipe(
  Command.withDescription("API keys"),
  Command.withSubcommands([
    Command.make("create", { orgId, name: keyName }, ({ orgId, name }) =>
      printed((keys) => keys.createKey(orgId, Option.getOrNull(name))),
    ).pipe(Command.withDescription("create an API key (printed once, only its hash is stored)")),
    Command.make("list", { orgId }, ({ orgId }) => printed((keys) => keys.listKeys(orgId))).pipe(
      Command.withDescription("list an organization's keys, newest first (never the keys themselves)"),
    ),
    Command.make("revoke", { keyId }, ({ keyId }) => printed((keys) => keys.revokeKey(keyId))).pipe(
      Command.withDescription("revoke an API key (effective immediately)"),
    ),
  ]),
)

const parley = Command.make("parley", {}, missingCommand(["org", "key"])).pipe(
  Command.withDescription(
    "Parley admin CLI. The database is DATABASE_URL, else the embedded one in $DATA_DIR/pg (DATA_DIR defaults to .data).",
  ),
  Command.withSubcommands([org, key]),
)

const cli = Command.run(parley, { name: "parley", version: VERSION })

// ---- output and exit codes ---------------------------------------------------------------------------

/** @effect/cli prints help and usage errors itself, styled for a terminal: plain text elsewhere, and
 * usage errors start with `error: ` like every other failure. */
const plainWhenPiped = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.consoleWith((console) => {
    const text = (stream: NodeJS.WriteStream) => (arg: unknown) => {
      const s = String(arg).trimEnd()
      return stream.isTTY ? s : Bun.stripANSI(s)
    }
    return Effect.withConsole(effect, {
      ...console,
      log: (...args) => console.log(...args.map(text(process.stdout))),
      error: (...args) => console.error(`error: ${args.map(text(process.stderr)).join(" ")}`),
    })
  })

/** One line for what went wrong. */
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))
  const message =
    error instanceof SqlError || error instanceof MigrationError || error instanceof EmbeddedPostgresError
      ? `database error: ${error.message}`
      : ConfigError.isConfigError(error)
        ? `invalid configuration: ${String(error).replace(/^\(|\)$/g, "")}`
        : error instanceof Error
          ? error.message
          : String(error)
  return message.split("\n")[0]
}

/** Exit 2 after a usage error (already printed), 1 with one line after any other failure. */
class Failed extends Data.TaggedError("Failed")<{ readonly code: number }> {}

const program = plainWhenPiped(cli(process.argv)).pipe(
  Effect.catchAllCause((cause) => {
    const error = Cause.failureOption(cause)
    return Option.isSome(error) && ValidationError.isValidationError(error.value)
      ? Effect.zipRight(Console.error("Run `npm run cli -- --help` for usage."), new Failed({ code: 2 }))
      : Effect.zipRight(Console.error(`error: ${describe(cause)}`), new Failed({ code: 1 }))
  }),
  // no logs unless --log-level asks, and then on stderr: stdout is the JSON
  Logger.withMinimumLogLevel(LogLevel.None),
  Effect.provide(
    Layer.mergeAll(
      BunContext.layer,
      Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.stringLogger)),
      // "A user-defined piece of text." under every argument says nothing
      CliConfig.layer({ showTypes: false }),
    ),
  ),
)

BunRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.match(exit, {
        onSuccess: () => 0,
        onFailure: (cause) =>
          Option.match(Cause.failureOption(cause), {
            onNone: () => 130, // interrupted (Ctrl-C), once the scopes have closed
            onSome: (error) => (error instanceof Failed ? error.code : 1),
          }),
      }),
    ),
})
