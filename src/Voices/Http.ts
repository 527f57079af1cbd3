import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../Api.ts"
import { envelope } from "../Domain/Envelope.ts"
import { DEFAULT_VOICE, VOICE_DESCRIPTIONS, VOICES } from "../Domain/Voices.ts"

const catalog = {
  object: "list" as const,
  data: VOICES.map((name) => ({
    name,
    description: VOICE_DESCRIPTIONS[name],
    provider: "gemini_live" as const,
    default: name === DEFAULT_VOICE,
  })),
  has_more: false,
  total_count: VOICES.length,
}

export const VoicesHttpLive = HttpApiBuilder.group(Api, "voices", (handlers) =>
  Effect.succeed(handlers.handle("list", () => envelope("list", catalog))),
)
