import { access, chmod, mkdir, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { Effect, Option } from "effect"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { AppConfig } from "./Config.ts"

const keyFile = (dataDir: string) => join(resolve(dataDir), "local-api-key")

export type LocalKey =
  | { readonly _tag: "None" }
  | { readonly _tag: "Created"; readonly apiKey: string; readonly file: string }
  | { readonly _tag: "Saved"; readonly file: string }

/**
 * First start on the embedded database: create organization `local` with one API key, shown once
 * in the banner and kept in `$DATA_DIR/local-api-key` (0600). Later starts only name the file.
 * With DATABASE_URL nothing is created.
 */
export const bootstrapLocalKey = Effect.gen(function* () {
  const config = yield* AppConfig
  if (Option.isSome(config.databaseUrl)) return { _tag: "None" } as LocalKey
  const keys = yield* ApiKeys
  const file = keyFile(config.dataDir)
  if ((yield* keys.countKeys) > 0) {
    const saved = yield* Effect.promise(() =>
      access(file).then(
        () => true,
        () => false,
      ),
    )
    return (saved ? { _tag: "Saved", file } : { _tag: "None" }) as LocalKey
  }
  const org = yield* keys.createOrg("local")
  const key = yield* keys.createKey(org.org_id, "local")
  yield* Effect.promise(async () => {
    await mkdir(resolve(config.dataDir), { recursive: true })
    await writeFile(file, `${key.api_key}\n`, { mode: 0o600 })
    await chmod(file, 0o600)
  })
  return { _tag: "Created", apiKey: key.api_key, file } as LocalKey
})

const keyLine = (key: LocalKey): string => {
  switch (key._tag) {
    case "Created":
      return `  API key    ${key.apiKey}\n             (shown once; saved in ${key.file})`
    case "Saved":
      return `  API key    in ${key.file}`
    case "None":
      return "  API key    none bootstrapped (use the admin API or `npm run cli`)"
  }
}

export const banner = (url: string, key: LocalKey) =>
  [
    "",
    "  Parley is up",
    `  API        ${url}/api/v1/voice`,
    `  Docs       ${url}/docs   (OpenAPI: ${url}/openapi.json)`,
    keyLine(key),
    "",
  ].join("\n")
