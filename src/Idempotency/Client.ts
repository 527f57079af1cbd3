/**
 * Idempotency keys from the typed client (`HttpApiClient.make(Api, ...)`): its endpoints declare no
 * headers (declaring one would make `headers` a required argument of every call), so the key travels
 * in a FiberRef instead. Build the client with `transformClient: sendIdempotencyKey`, then:
 *
 *   client.sessions.start({ payload }).pipe(withIdempotencyKey(crypto.randomUUID()))
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Effect, FiberRef, Option } from "effect"
import { globalValue } from "effect/GlobalValue"

/** The key the calls made in this fiber send, if any. */
export const CurrentIdempotencyKey = globalValue("Parley/CurrentIdempotencyKey", () =>
  FiberRef.unsafeMake<Option.Option<string>>(Option.none()),
)

/** Sends `key` as the Idempotency-Key of the calls `self` makes (retry `self` itself with the same key). */
export const withIdempotencyKey =
  (key: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.locally(self, CurrentIdempotencyKey, Option.some(key))

/** A client's transform (`transformClient`) that adds the current key to each request. */
export const sendIdempotencyKey = <E, R>(client: HttpClient.HttpClient.With<E, R>) =>
  HttpClient.mapRequestEffect(client, (request) =>
    FiberRef.getWith(CurrentIdempotencyKey, (key) =>
      Option.match(key, {
        onNone: () => Effect.succeed(request),
        onSome: (value) => Effect.succeed(HttpClientRequest.setHeader(request, "idempotency-key", value)),
      }),
    ),
  )
