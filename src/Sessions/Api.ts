import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Authenticated } from "../Auth/Middleware.ts"
import { Envelope } from "../Domain/Envelope.ts"
import {
  VoiceAgentNotFound,
  VoiceGeminiEphemeralFailed,
  VoiceLiveKitFailed,
  VoiceResultExtractionFailed,
  VoiceSessionNotActive,
  VoiceSessionNotFound,
  VoiceSessionTtlTooShort,
  wire,
} from "../Domain/Errors.ts"
import { IdPath, SessionId } from "../Domain/Ids.ts"
import {
  CompletedEnvelope,
  CompleteSession,
  Session,
  SessionStarted,
  StartSession,
  WaitParams,
} from "../Domain/Session.ts"
import { JsonBody } from "../Http/Body.ts"

const path = IdPath(SessionId)

export class SessionsApi extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("start", "/api/v1/voice/sessions")
      .setPayload(JsonBody(StartSession))
      .addSuccess(Envelope("voice_session", SessionStarted), { status: 201 })
      .addError(wire(VoiceSessionTtlTooShort))
      .addError(wire(VoiceAgentNotFound))
      .addError(wire(VoiceLiveKitFailed))
      .addError(wire(VoiceGeminiEphemeralFailed))
      .annotate(OpenApi.Summary, "Start a voice session"),
  )
  .add(
    HttpApiEndpoint.get("get", "/api/v1/voice/sessions/:id")
      .setPath(path)
      .setUrlParams(WaitParams)
      .addSuccess(Envelope("voice_session", Session))
      .addError(wire(VoiceSessionNotFound))
      .annotate(OpenApi.Summary, "Get a voice session, optionally waiting for its result")
      .annotate(
        OpenApi.Description,
        "With wait_for_completion=true, waits (up to timeout_seconds, default 30) until the session is terminal.",
      ),
  )
  .add(
    HttpApiEndpoint.post("complete", "/api/v1/voice/sessions/:id/complete")
      .setPath(path)
      .setPayload(JsonBody(CompleteSession))
      .addSuccess(CompletedEnvelope)
      .addError(wire(VoiceSessionNotFound))
      .addError(wire(VoiceSessionNotActive))
      .addError(wire(VoiceResultExtractionFailed))
      .annotate(OpenApi.Summary, "Complete a voice session with its transcript"),
  )
  .middleware(Authenticated)
  .annotate(OpenApi.Title, "Voice sessions")
  .annotate(
    OpenApi.Description,
    "Start a session (LiveKit room and Gemini Live credentials), read or long-poll it, complete it with a transcript to get structured results.",
  ) {}
