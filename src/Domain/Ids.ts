import { Schema } from "effect"
import { Str } from "./Fields.ts"

const Uuid = Schema.compose(Str, Schema.UUID.annotations({ message: () => "must be a UUID" }))

export const OrgId = Uuid.pipe(Schema.brand("OrgId"))
export type OrgId = typeof OrgId.Type
export const AgentId = Uuid.pipe(Schema.brand("AgentId"))
export type AgentId = typeof AgentId.Type
export const SessionId = Uuid.pipe(Schema.brand("SessionId"))
export type SessionId = typeof SessionId.Type

/** `:id` path parameters: a non-UUID is a 400 with `param: "id"`. */
export const IdPath = <S extends Schema.Schema.Any>(id: S) => Schema.Struct({ id })
