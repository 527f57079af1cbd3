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

const path = IdPath(SessionId)

export class SessionsApi extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("start", "/api/v1/voice/sessions")
      .setPayload(StartSession)
      .addSuccess(Envelope("voice_session", SessionStarted), { status: 201 })
      .addError(wire(VoiceSessionTtlTooShort))
      .addError(wire(VoiceAgentNotFound))
      .addError(wire(VoiceLiveKitFailed))
      .addError(wire(VoiceGeminiEphemeralFailed)),
  )
  .add(
    HttpApiEndpoint.get("get", "/api/v1/voice/sessions/:id")
      .setPath(path)
      .setUrlParams(WaitParams)
      .addSuccess(Envelope("voice_session", Session))
      .addError(wire(VoiceSessionNotFound))
      .annotate(
        OpenApi.Description,
        "With wait_for_completion=true, waits (up to timeout_seconds, default 30) until the session is terminal.",
      ),
  )
  .add(
    HttpApiEndpoint.post("complete", "/api/v1/voice/sessions/:id/complete")
      .setPath(path)
      .setPayload(CompleteSession)
      .addSuccess(CompletedEnvelope)
      .addError(wire(VoiceSessionNotFound))
      .addError(wire(VoiceSessionNotActive))
      .addError(wire(VoiceResultExtractionFailed)),
  )
  .middleware(Authenticated)
  .annotate(OpenApi.Title, "Voice sessions") {}
