import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { Effect, Option } from "effect"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { AppConfig } from "./Config.ts"

const keyFile = (dataDir: string) => join(resolve(dataDir), "local-api-key")

/**
 * First start on the embedded database: create organization `local` with one API key, shown once
 * in the banner and kept in `$DATA_DIR/local-api-key` (0600). With DATABASE_URL nothing is created.
 */
export const bootstrapLocalKey = Effect.gen(function* () {
  const config = yield* AppConfig
  if (Option.isSome(config.databaseUrl)) return Option.none<string>()
  const keys = yield* ApiKeys
  const file = keyFile(config.dataDir)
  if ((yield* keys.countKeys) > 0) {
    const saved = yield* Effect.promise(() => readFile(file, "utf8").catch(() => ""))
    return saved.trim() === "" ? Option.none<string>() : Option.some(saved.trim())
  }
  const org = yield* keys.createOrg("local")
  const key = yield* keys.createKey(org.org_id, "local")
  yield* Effect.promise(async () => {
    await mkdir(resolve(config.dataDir), { recursive: true })
    await writeFile(file, `${key.api_key}\n`, { mode: 0o600 })
    await chmod(file, 0o600)
  })
  return Option.some(key.api_key)
})

export const banner = (url: string, apiKey: Option.Option<string>, dataDir: string) =>
  [
    "",
    "  Parley is up",
    `  API        ${url}/api/v1/voice`,
    `  Docs       ${url}/docs   (OpenAPI: ${url}/openapi.json)`,
    Option.match(apiKey, {
      onNone: () => "  API key    none bootstrapped (use the admin API or `npm run cli`)",
      onSome: (key) => `  API key    ${key}\n             (saved in ${keyFile(dataDir)})`,
    }),
    "",
  ].join("\n")
