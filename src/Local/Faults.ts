/** Injected faults of a local upstream: each applies to one method (or all) a number of times. */
export const faultQueue = <
  F extends { readonly method?: string | undefined; readonly times?: number | undefined },
>() => {
  let faults: Array<{ fault: F; remaining: number }> = []
  return {
    inject: (fault: F) => {
      faults.push({ fault, remaining: fault.times ?? Number.POSITIVE_INFINITY })
    },
    clear: () => {
      faults = []
    },
    /** The first fault for `method`, counting one use of it. */
    take: (method: string): F | undefined => {
      const entry = faults.find((f) => f.fault.method === undefined || f.fault.method === method)
      if (!entry) return undefined
      entry.remaining -= 1
      if (entry.remaining <= 0) faults = faults.filter((f) => f !== entry)
      return entry.fault
    },
  }
}
