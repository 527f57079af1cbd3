import { Schema } from "effect"
import { toUnix } from "./Envelope.ts"

/**
 * How PostgreSQL columns differ from the API fields the domain schemas describe. Each repository
 * builds its row schemas from a domain schema and these, so a row is decoded (and checked) in one
 * place and a renamed column fails loudly there.
 */

/** A `timestamptz` (the driver returns a Date) as the API's integer Unix seconds. */
export const UnixFromDate = Schema.transform(Schema.DateFromSelf, Schema.Int, {
  strict: true,
  decode: toUnix,
  encode: (seconds) => new Date(seconds * 1000),
})

/** A field read from the table's `id` column (`agent_id`, `session_id`, ...). */
export const fromId = <S extends Schema.Schema.Any>(id: S) =>
  Schema.propertySignature(id).pipe(Schema.fromKey("id"))

/**
 * A `jsonb` parameter, sent as JSON text: node-postgres would send an array as a PostgreSQL array.
 * Reads need no counterpart, as the driver parses `jsonb` columns itself.
 */
export const Jsonb = <S extends Schema.Schema.Any>(schema: S) => Schema.parseJson(schema)
