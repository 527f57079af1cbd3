import { Clock, Effect, FiberRef, Schema } from "effect"
import { CurrentRequestId } from "./RequestId.ts"

/** `{id, object, status, created_at, data}`: the success envelope of every response. */
export const Envelope = <O extends string, D extends Schema.Schema.Any>(object: O, data: D) =>
  Schema.Struct({
    id: Schema.String,
    object: Schema.Literal(object),
    status: Schema.String,
    created_at: Schema.Int,
    data,
  })

/** The list payload: `{object: "list", data, has_more, total_count}`, newest first. */
export const ListOf = <S extends Schema.Schema.Any>(item: S) =>
  Schema.Struct({
    object: Schema.Literal("list"),
    data: Schema.Array(item),
    has_more: Schema.Boolean,
    total_count: Schema.Int,
  })

/** `{object: "list", data, has_more}`: a cursor-paginated page (no total: counting many rows is slow). */
export const PageOf = <S extends Schema.Schema.Any>(item: S) =>
  Schema.Struct({
    object: Schema.Literal("list"),
    data: Schema.Array(item),
    has_more: Schema.Boolean,
  })

export const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms / 1000))

/** Wrap `data` for the response to the request being served (`extra` = more top-level fields). */
export const envelope = <O extends string, D, S extends string = "completed", X extends object = {}>(
  object: O,
  data: D,
  status: S = "completed" as S,
  extra: X = {} as X,
) =>
  Effect.map(Effect.zip(FiberRef.get(CurrentRequestId), nowSeconds), ([id, created_at]) => ({
    id,
    object,
    status,
    created_at,
    ...extra,
    data,
  }))

/**
 * The same envelope as JSON text, around `dataJson` (data already encoded): for answers sent outside
 * the HttpApi (a parked long-poll's), where many requests share one encoded row.
 */
export const envelopeJson = (
  object: string,
  status: string,
  requestId: string,
  createdAt: number,
  dataJson: string,
) =>
  `${JSON.stringify({ id: requestId, object, status, created_at: createdAt }).slice(0, -1)},"data":${dataJson}}`

export const toUnix = (date: Date): number => Math.floor(date.getTime() / 1000)
