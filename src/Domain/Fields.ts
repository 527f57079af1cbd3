import { Schema } from "effect"

/** A string trimmed before its bounds are checked (SPEC §5). */
export const Text = (min: number, max: number) =>
  Schema.Trim.pipe(
    Schema.minLength(min, {
      message: () => (min === 1 ? "must not be empty" : `must be at least ${min} characters`),
    }),
    Schema.maxLength(max, { message: () => `must be at most ${max} characters` }),
  )

export const IntBetween = (min: number, max: number) =>
  Schema.Int.annotations({ message: () => "must be an integer" }).pipe(
    Schema.between(min, max, { message: () => `must be between ${min} and ${max}` }),
  )

export const Identifier = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z][A-Za-z0-9_]*$/, {
    message: () => "must start with a letter and contain only letters, digits and underscores",
  }),
  Schema.minLength(1, { message: () => "must not be empty" }),
  Schema.maxLength(64, { message: () => "must be at most 64 characters" }),
)

export const maxKeys =
  (max: number) =>
  <A extends Readonly<Record<string, unknown>>, I, R>(self: Schema.Schema<A, I, R>) =>
    self.pipe(
      Schema.filter((record) =>
        Object.keys(record).length <= max ? undefined : `must have at most ${max} keys`,
      ),
    )

/** A JSON object whose serialized form is at most `max` characters. */
export const JsonObject = (max: number) =>
  Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
    Schema.filter((o) =>
      JSON.stringify(o).length <= max ? undefined : `serialized length must be at most ${max} characters`,
    ),
  )

/** Unknown fields are rejected and every issue is reported. */
export const strict = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const
