import type { HttpApiEndpoint, HttpMethod } from "@effect/platform"
import type { Schema } from "effect"
import {
  type ApiErrorClass,
  type ApiErrorInstance,
  VoiceAgentNotFound,
  VoiceSessionNotFound,
  wire,
} from "../Domain/Errors.ts"
import { AgentId, IdPath, SessionId } from "../Domain/Ids.ts"

/** An endpoint on one resource: the path that names it, and the 404 when there is no such resource. */
export const onOne =
  <P extends Schema.Schema.Any, A extends ApiErrorInstance>(
    path: P & HttpApiEndpoint.HttpApiEndpoint.ValidatePath<P>,
    notFound: ApiErrorClass<A>,
  ) =>
  <Name extends string, Method extends HttpMethod.HttpMethod>(
    endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method>,
  ) =>
    endpoint.setPath<P>(path).addError(wire(notFound))

/** `…/:id` endpoints on an agent of the caller's organization. */
export const onAgent = onOne(IdPath(AgentId), VoiceAgentNotFound)
/** `…/:id` endpoints on a session of the caller's organization. */
export const onSession = onOne(IdPath(SessionId), VoiceSessionNotFound)
