import { Schema } from "effect"

/** An API key as listed: never the key itself, which only its creation shows. */
export const ApiKey = Schema.Struct({
  key_id: Schema.UUID,
  name: Schema.NullOr(Schema.String),
  prefix: Schema.String,
  created_at: Schema.Int,
  revoked_at: Schema.NullOr(Schema.Int),
})
export type ApiKey = typeof ApiKey.Type

/** The answer to creating a key: the only time the key is shown. */
export const ApiKeyCreated = Schema.Struct({
  key_id: ApiKey.fields.key_id,
  api_key: Schema.String,
  prefix: ApiKey.fields.prefix,
  created_at: ApiKey.fields.created_at,
})
