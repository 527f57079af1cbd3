import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authenticated } from "../Auth/Middleware.ts"
import { Envelope, ListOf } from "../Domain/Envelope.ts"

export const VoiceInfo = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  provider: Schema.Literal("gemini_live"),
  default: Schema.Boolean,
})

export class VoicesApi extends HttpApiGroup.make("voices")
  .middleware(Authenticated)
  .add(
    HttpApiEndpoint.get("list", "/api/v1/voice/voices")
      .addSuccess(Envelope("list", ListOf(VoiceInfo)))
      .annotate(OpenApi.Summary, "List voices"),
  )
  .annotate(OpenApi.Title, "Voices")
  .annotate(OpenApi.Description, "The Gemini Live prebuilt voices an agent or a session may use.") {}
