import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authenticated } from "../Auth/Middleware.ts"
import {
  Agent,
  AgentCreated,
  AgentDeleted,
  AgentPreview,
  AgentSummary,
  CreateAgent,
  UpdateAgent,
} from "../Domain/Agent.ts"
import { Envelope, ListOf } from "../Domain/Envelope.ts"
import { VoiceAgentNotFound, wire } from "../Domain/Errors.ts"
import { IntParam, optional } from "../Domain/Fields.ts"
import { AgentId, IdPath } from "../Domain/Ids.ts"
import { JsonBody } from "../Http/Body.ts"

export const Pagination = Schema.Struct({
  limit: optional(IntParam(1, 100)),
  // the Pi API's bound
  offset: optional(IntParam(0, 1_000_000)),
})

const path = IdPath(AgentId)

export class AgentsApi extends HttpApiGroup.make("agents")
  .add(
    HttpApiEndpoint.post("create", "/api/v1/voice/agents")
      .setPayload(JsonBody(CreateAgent))
      .addSuccess(Envelope("voice_agent", AgentCreated))
      .annotate(OpenApi.Summary, "Create a voice agent"),
  )
  .add(
    HttpApiEndpoint.get("list", "/api/v1/voice/agents")
      .setUrlParams(Pagination)
      .addSuccess(Envelope("list", ListOf(AgentSummary)))
      .annotate(OpenApi.Summary, "List voice agents"),
  )
  .add(
    HttpApiEndpoint.get("get", "/api/v1/voice/agents/:id")
      .setPath(path)
      .addSuccess(Envelope("voice_agent", Agent))
      .addError(wire(VoiceAgentNotFound))
      .annotate(OpenApi.Summary, "Get a voice agent"),
  )
  .add(
    HttpApiEndpoint.get("preview", "/api/v1/voice/agents/:id/preview")
      .setPath(path)
      .addSuccess(Envelope("voice_agent_preview", AgentPreview))
      .addError(wire(VoiceAgentNotFound))
      .annotate(OpenApi.Summary, "Preview a voice agent's system instruction"),
  )
  .add(
    HttpApiEndpoint.patch("update", "/api/v1/voice/agents/:id")
      .setPath(path)
      .setPayload(JsonBody(UpdateAgent))
      .addSuccess(Envelope("voice_agent", Agent))
      .addError(wire(VoiceAgentNotFound))
      .annotate(OpenApi.Summary, "Update a voice agent"),
  )
  .add(
    HttpApiEndpoint.del("delete", "/api/v1/voice/agents/:id")
      .setPath(path)
      .addSuccess(Envelope("voice_agent.deleted", AgentDeleted))
      .addError(wire(VoiceAgentNotFound))
      .annotate(OpenApi.Summary, "Delete a voice agent"),
  )
  .middleware(Authenticated)
  .annotate(OpenApi.Title, "Voice agents")
  .annotate(
    OpenApi.Description,
    "Agent definitions: persona, questions, behaviours and output schema, compiled into a system instruction.",
  ) {}
