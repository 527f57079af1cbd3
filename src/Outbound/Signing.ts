/** Standard Webhooks signing (https://www.standardwebhooks.com): secrets and the three headers. */
import { createHmac, randomBytes } from "node:crypto"

const PREFIX = "whsec_"

/** A new signing secret: `whsec_` + base64 of 32 random bytes (the spec asks for 24 to 64). */
export const newSecret = () => `${PREFIX}${randomBytes(32).toString("base64")}`

/** `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`, keyed by the secret's decoded bytes. */
const signature = (secret: string, id: string, timestamp: number, body: string) =>
  `v1,${createHmac("sha256", Buffer.from(secret.slice(PREFIX.length), "base64"))
    .update(`${id}.${timestamp}.${body}`)
    .digest("base64")}`

/**
 * The headers of one attempt: the message id (the same on every attempt), the time of this attempt
 * in Unix seconds, and one signature per secret that signs now (two while a rotation overlaps).
 */
export const signedHeaders = (
  secrets: ReadonlyArray<string>,
  id: string,
  timestampSeconds: number,
  body: string,
) => ({
  "content-type": "application/json",
  "user-agent": "Parley-Webhooks/1",
  "webhook-id": id,
  "webhook-timestamp": String(timestampSeconds),
  "webhook-signature": secrets.map((s) => signature(s, id, timestampSeconds, body)).join(" "),
})
