/** The processes of a PostgreSQL cluster a test owns, for killing, stopping and resuming it (Linux). */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const parentOf = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined
  }
}

/** Whether `pid` runs (a zombie, exited but not yet reaped, does not). */
export const isRunning = (pid: number): boolean => {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** The postmaster of the cluster in `pgDir`, from its lock file: pid and port. */
export const postmasterOf = (pgDir: string): { pid: number; port: number } => {
  const lines = readFileSync(join(pgDir, "postmaster.pid"), "utf8").split("\n")
  return { pid: Number.parseInt(lines[0], 10), port: Number.parseInt(lines[3], 10) }
}

/** The postmaster and every process it has forked (backends, checkpointer, ...) right now. */
export const clusterProcesses = (postmaster: number): Array<number> => [
  postmaster,
  ...readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => parentOf(pid) === postmaster),
]

/** Sends `signal` to each of `pids` that still exists. */
export const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}
