import { Schema } from "effect"

/** A tenant: every agent, session and API key belongs to one. */
export const Organization = Schema.Struct({
  org_id: Schema.UUID,
  name: Schema.String,
  created_at: Schema.Int,
})
export type Organization = typeof Organization.Type
