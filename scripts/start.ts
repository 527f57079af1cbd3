/**
 * `npm start`: the server bundle, rebuilt first if a source file is newer than it (a check of a few
 * milliseconds), then run in this process (one process start, not two).
 */
import { bundle, ensureBundle } from "./server-bundle.ts"

await ensureBundle(false)
await import(bundle)
