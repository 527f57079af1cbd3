import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Authenticated } from "../Auth/Middleware.ts"
import { Envelope } from "../Domain/Envelope.ts"
import {
  VoiceAgentNotFound,
  VoiceGeminiEphemeralFailed,
  VoiceLiveKitFailed,
  VoiceResultExtractionFailed,
  VoiceSessionNotActive,
  VoiceSessionTtlTooShort,
  wire,
} from "../Domain/Errors.ts"
import {
  CompletedEnvelope,
  CompleteSession,
  Session,
  SessionStarted,
  StartSession,
  WaitParams,
} from "../Domain/Session.ts"
import { JsonBody } from "../Http/Body.ts"
import { onSession } from "../Http/Resources.ts"

/** What `GET /sessions/:id` answers (also when a long-poll's answer is sent on its own). */
export const SessionEnvelope = Envelope("voice_session", Session)

export class SessionsApi extends HttpApiGroup.make("sessions")
  .middleware(Authenticated)
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
    onSession(HttpApiEndpoint.get("get", "/api/v1/voice/sessions/:id"))
      .setUrlParams(WaitParams)
      .addSuccess(SessionEnvelope)
      .annotate(OpenApi.Summary, "Get a voice session, optionally waiting for its result")
      .annotate(
        OpenApi.Description,
        "With wait_for_completion=true, waits (up to timeout_seconds, default 30) until the session is terminal.",
      ),
  )
  .add(
    onSession(HttpApiEndpoint.post("complete", "/api/v1/voice/sessions/:id/complete"))
      .setPayload(JsonBody(CompleteSession))
      .addSuccess(CompletedEnvelope)
      .addError(wire(VoiceSessionNotActive))
      .addError(wire(VoiceResultExtractionFailed))
      .annotate(OpenApi.Summary, "Complete a voice session with its transcript"),
  )
  .annotate(OpenApi.Title, "Voice sessions")
  .annotate(
    OpenApi.Description,
    "Start a session (LiveKit room and Gemini Live credentials), read or long-poll it, complete it with a transcript to get structured results.",
  ) {}
