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
import { IntParam, optional } from "../Domain/Fields.ts"
import { JsonBody } from "../Http/Body.ts"
import { onAgent } from "../Http/Resources.ts"

export const Pagination = Schema.Struct({
  limit: optional(IntParam(1, 100)),
  // the Pi API's bound
  offset: optional(IntParam(0, 1_000_000)),
})

export class AgentsApi extends HttpApiGroup.make("agents")
  .middleware(Authenticated)
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
    onAgent(HttpApiEndpoint.get("get", "/api/v1/voice/agents/:id"))
      .addSuccess(Envelope("voice_agent", Agent))
      .annotate(OpenApi.Summary, "Get a voice agent"),
  )
  .add(
    onAgent(HttpApiEndpoint.get("preview", "/api/v1/voice/agents/:id/preview"))
      .addSuccess(Envelope("voice_agent_preview", AgentPreview))
      .annotate(OpenApi.Summary, "Preview a voice agent's system instruction"),
  )
  .add(
    onAgent(HttpApiEndpoint.patch("update", "/api/v1/voice/agents/:id"))
      .setPayload(JsonBody(UpdateAgent))
      .addSuccess(Envelope("voice_agent", Agent))
      .annotate(OpenApi.Summary, "Update a voice agent"),
  )
  .add(
    onAgent(HttpApiEndpoint.del("delete", "/api/v1/voice/agents/:id"))
      .addSuccess(Envelope("voice_agent.deleted", AgentDeleted))
      .annotate(OpenApi.Summary, "Delete a voice agent"),
  )
  .annotate(OpenApi.Title, "Voice agents")
  .annotate(
    OpenApi.Description,
    "Agent definitions: persona, questions, behaviours and output schema, compiled into a system instruction.",
  ) {}
