/** Outbound webhooks without a database: signing (checked by `standardwebhooks`), addresses, backoff, the service. */
import { describe, expect, test } from "bun:test"
import { Effect, Layer } from "effect"
import { Webhook } from "standardwebhooks"
import { AppConfig } from "../src/Config.ts"
import type { OrgId } from "../src/Domain/Ids.ts"
import type { EndpointId } from "../src/Domain/WebhookEndpoint.ts"
import { backoffMs } from "../src/Outbound/Dispatcher.ts"
import { newSecret, signedHeaders } from "../src/Outbound/Signing.ts"
import { privateAddress, refusal } from "../src/Outbound/Targets.ts"
import { WebhookEndpoints } from "../src/WebhookEndpoints.ts"

describe("signing", () => {
  test("standardwebhooks verifies what Parley signs, with either secret of a rotation", () => {
    const [current, previous] = [newSecret(), newSecret()]
    const body = JSON.stringify({ id: "msg_1", type: "voice_session.completed", data: { ü: "✓" } })
    const headers = signedHeaders([current, previous], "msg_1", Math.floor(Date.now() / 1000), body)
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}=$/)
    expect(new Webhook(current).verify(body, headers)).toEqual(JSON.parse(body))
    expect(new Webhook(previous).verify(body, headers)).toEqual(JSON.parse(body))
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow()
    expect(() => new Webhook(current).verify(`${body} `, headers)).toThrow()
  })
})

describe("addresses", () => {
  test("private, loopback, link-local and other non-public addresses are recognised", () => {
    const refused = [
      "127.0.0.1",
      "127.255.0.9",
      "10.0.0.1",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::",
      "::1",
      "fe80::1",
      "fd12:3456::1",
      "ff02::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:10.0.0.1",
      "64:ff9b::a9fe:a9fe",
      "2002:7f00:1::1",
      "2002:a9fe:a9fe::",
      "2001:0:4136:e378::1",
      "100::1",
      "not-an-address",
    ]
    const allowed = [
      "8.8.8.8",
      "172.15.255.255",
      "172.32.0.1",
      "93.184.215.14",
      "2606:4700::1111",
      "::ffff:8.8.8.8",
      "2002:808:808::1",
      "2001:4860:4860::8888",
    ]
    expect(refused.filter((a) => privateAddress(a) === undefined)).toEqual([])
    expect(allowed.filter((a) => privateAddress(a) !== undefined)).toEqual([])
  })

  test("https only, unless private targets are allowed", async () => {
    expect(await Effect.runPromise(refusal("http://93.184.215.14/", false))).toContain("https")
    expect(await Effect.runPromise(refusal("https://93.184.215.14/", false))).toBeUndefined()
    expect(await Effect.runPromise(refusal("https://[::1]:8443/", false))).toContain("::1")
    expect(await Effect.runPromise(refusal("http://127.0.0.1/", true))).toBeUndefined()
  })

  test("a name that does not resolve is accepted on save and refused for an attempt", async () => {
    const url = "https://does-not-resolve.invalid/hook"
    expect(await Effect.runPromise(refusal(url, false))).toBeUndefined()
    expect(await Effect.runPromise(refusal(url, false, "refuse"))).toContain("does not resolve")
  })
})

test("backoff doubles from the base up to an hour, half of it random", () => {
  expect([1, 2, 3].map((n) => backoffMs(n, 5000, 0))).toEqual([2500, 5000, 10_000])
  expect([1, 2, 3].map((n) => backoffMs(n, 5000, 1))).toEqual([5000, 10_000, 20_000])
  expect(backoffMs(40, 5000, 1)).toBe(3_600_000)
  expect(backoffMs(40, 5000, 0)).toBe(1_800_000)
})

describe("the service over the in-memory repository", () => {
  const run = <A, E>(effect: Effect.Effect<A, E, WebhookEndpoints>) =>
    Effect.runPromise(
      effect.pipe(
        Effect.provide(
          WebhookEndpoints.Test.pipe(Layer.provide(AppConfig.layer({ webhookAllowPrivate: false }))),
        ),
      ),
    )
  const orgId = crypto.randomUUID() as OrgId

  test("create shows the secret once; rotation keeps the old one signing; PATCH and delete", () =>
    run(
      Effect.gen(function* () {
        const endpoints = yield* WebhookEndpoints
        const created = yield* endpoints.create(orgId, { url: "https://93.184.215.14/hooks" })
        expect(created).toMatchObject({ enabled_events: ["*"], enabled: true, description: null })
        const id = created.endpoint_id
        const got = yield* endpoints.get(orgId, id)
        expect("secret" in got).toBe(false)
        const rotated = yield* endpoints.rotateSecret(orgId, id)
        expect(rotated.secret).not.toBe(created.secret)
        expect(rotated.previous_secret_expires_at).toBe(rotated.updated_at + 86_400)
        const updated = yield* endpoints.update(orgId, id, { enabled: false, description: "x" })
        expect(updated).toMatchObject({ enabled: false, description: "x", url: created.url })
        const refused = yield* Effect.flip(endpoints.update(orgId, id, { url: "https://10.0.0.1/" }))
        expect(refused).toMatchObject({ _tag: "WebhookUrlNotAllowed", param: "url" })
        const other = yield* Effect.flip(endpoints.get(crypto.randomUUID() as OrgId, id))
        expect(other._tag).toBe("WebhookEndpointNotFound")
        expect(yield* endpoints.remove(orgId, id)).toEqual({ endpoint_id: id, deleted: true })
        expect((yield* endpoints.list(orgId)).data).toEqual([])
        const gone = yield* Effect.flip(endpoints.remove(orgId, id as EndpointId))
        expect(gone._tag).toBe("WebhookEndpointNotFound")
      }),
    ))
})
