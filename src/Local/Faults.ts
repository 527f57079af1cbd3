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

/**
 * Holds requests of a local upstream until the test releases them, so a test can tell which calls
 * are in flight at once, and what happens while an upstream does not answer, without timing anything.
 */
export interface Hold {
  /** Resolves once a request is held. */
  readonly arrived: Promise<void>
  /** Lets every held request, and every later one, go on. */
  readonly release: () => void
  /** For the upstream: holds one request until released. */
  readonly enter: () => Promise<void>
}

export const makeHold = (): Hold => {
  let arrive = () => {}
  let release = () => {}
  const arrived = new Promise<void>((resolve) => {
    arrive = resolve
  })
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  return {
    arrived,
    release: () => release(),
    enter: () => {
      arrive()
      return released
    },
  }
}
