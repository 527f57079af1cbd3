import { Schema } from "effect"
import { Str } from "./Fields.ts"

// documented as the UUID it is (the string-first composition would otherwise show a bare string)
const Uuid = Schema.compose(Str, Schema.UUID.annotations({ message: () => "must be a UUID" })).annotations({
  jsonSchema: { type: "string", format: "uuid" },
})

export const OrgId = Uuid.pipe(Schema.brand("OrgId"))
export type OrgId = typeof OrgId.Type
export const AgentId = Uuid.pipe(Schema.brand("AgentId"))
export type AgentId = typeof AgentId.Type
export const SessionId = Uuid.pipe(Schema.brand("SessionId"))
export type SessionId = typeof SessionId.Type

/** `:id` path parameters: a non-UUID is a 400 with `param: "id"`. */
export const IdPath = <S extends Schema.Schema.Any>(id: S) => Schema.Struct({ id })
