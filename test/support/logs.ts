/** Logs kept instead of printed: a passing run is quiet, and a test can assert on what was logged. */
import { type Layer, Logger } from "effect"

export interface CapturedLogs {
  /** Replaces the default logger; provide it to a layer, a runtime or an effect. */
  readonly layer: Layer.Layer<never>
  /** Every line so far, formatted as the default logger prints it. */
  readonly lines: () => ReadonlyArray<string>
}

export const captureLogs = (): CapturedLogs => {
  const lines: Array<string> = []
  const layer = Logger.replace(
    Logger.defaultLogger,
    Logger.make((options) => {
      lines.push(Logger.logfmtLogger.log(options))
    }),
  )
  return { layer, lines: () => lines }
}
