/**
 * What the repositories share: their service tags, the organization-scoped lookup, and the tables in
 * memory behind their Test layers. (Their row schemas are built from Domain/Columns.ts; their failures
 * are mapped by `repository` in Domain/Errors.ts.)
 */
import { type SqlClient, type SqlError, SqlSchema } from "@effect/sql"
import { Clock, Context, Effect, Layer, Option, Predicate, Schedule, Schema, SynchronizedRef } from "effect"

/**
 * A repository's service tag: its `Live` layer over the database (built by `live`), and its `Test`
 * layer over tables in memory, for unit tests (built by `test`, with the same operations).
 */
export const RepositoryTag =
  <Self>() =>
  <const Id extends string, S, E, R, TE, TR>(
    id: Id,
    live: Effect.Effect<S, E, R>,
    test: Effect.Effect<NoInfer<S>, TE, TR>,
  ) => {
    class Tag extends Context.Tag(id)<Self, S>() {
      static readonly Live = Layer.effect(Tag, live)
      static readonly Test = Layer.effect(Tag, test)
    }
    return Tag
  }

/** A row of an organization by id: clients only ever reach their own organization's rows. */
export const OrgKey = Schema.Struct({ orgId: Schema.String, id: Schema.String })
export type OrgKey = typeof OrgKey.Type

/** The row of `table` that `key` names, decoded by `Result` (and locked, `FOR UPDATE`, if asked). */
export const findOwned = <A, I>(
  sql: SqlClient.SqlClient,
  table: string,
  Result: Schema.Schema<A, I>,
  lock: "FOR UPDATE" | "" = "",
) =>
  SqlSchema.findOne({
    Request: OrgKey,
    Result,
    execute: ({ orgId, id }) =>
      sql`SELECT * FROM ${sql(table)} WHERE org_id = ${orgId} AND id = ${id} ${sql.literal(lock)}`,
  })

/** In memory, the row `key` names. */
export const owned =
  ({ orgId, id }: OrgKey) =>
  (row: { readonly org_id: string; readonly id: string }) =>
    row.org_id === orgId && row.id === id

/** `clock_timestamp()` on the Effect clock (a TestClock in unit tests). */
const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

/**
 * A table in memory: rows as the driver returns them (so the Live layer's row schemas decode them),
 * in insertion order. Its statements run one at a time, each seeing the time it runs at.
 */
export const makeTable = <Row>() =>
  Effect.map(SynchronizedRef.make<ReadonlyArray<Row>>([]), (ref) => {
    const statement = <A, E>(
      run: (rows: ReadonlyArray<Row>, at: Date) => Effect.Effect<readonly [A, ReadonlyArray<Row>], E>,
    ) => Effect.flatMap(now, (at) => SynchronizedRef.modifyEffect(ref, (rows) => run(rows, at)))
    return {
      rows: SynchronizedRef.get(ref),
      find: (where: (row: Row) => boolean) =>
        Effect.map(SynchronizedRef.get(ref), (rows) => Option.fromNullable(rows.find(where))),
      /** Appends the row made at this time; returns it. */
      insert: (make: (at: Date) => Row) =>
        statement((rows, at) => {
          const row = make(at)
          return Effect.succeed([row, [...rows, row]] as const)
        }),
      /** Replaces the first row `where` matches by what `set` makes of it; the new row, if there was one. */
      update: <E>(
        where: (row: Row, at: Date) => boolean,
        set: (row: Row, at: Date) => Effect.Effect<Row, E>,
      ) =>
        statement((rows, at) => {
          const row = rows.find((r) => where(r, at))
          if (row === undefined) return Effect.succeed([Option.none<Row>(), rows] as const)
          return Effect.map(
            set(row, at),
            (next) => [Option.some(next), rows.map((r) => (r === row ? next : r))] as const,
          )
        }),
      /** Replaces every row `where` matches by `set(row)`; returns the new rows. */
      updateAll: (where: (row: Row, at: Date) => boolean, set: (row: Row, at: Date) => Row) =>
        statement((rows, at) => {
          const next = rows.map((row) => (where(row, at) ? set(row, at) : row))
          return Effect.succeed([next.filter((row, i) => row !== rows[i]), next] as const)
        }),
      delete: (where: (row: Row, at: Date) => boolean) =>
        statement((rows, at) => Effect.succeed([undefined, rows.filter((row) => !where(row, at))] as const)),
    }
  })

/** Decodes a row found, if there is one. */
export const decodeFound =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (row: Option.Option<I>) =>
    Effect.transposeOption(Option.map(row, Schema.decode(schema)))

/**
 * `sql.withTransaction`, except that a COMMIT or ROLLBACK that fails (the connection was lost) is a
 * SqlError like any other statement's, which `repository` maps to 503 and callers retry; the client
 * turns it into a defect. A lost COMMIT may have committed: callers' statements are written so that
 * a retry finds the change made (a finish then finds its claim gone and reads the outcome).
 */
export const transaction =
  (sql: SqlClient.SqlClient) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    sql
      .withTransaction(self)
      .pipe(
        Effect.catchAllDefect((defect) =>
          Predicate.isTagged(defect, "SqlError")
            ? Effect.fail(defect as SqlError.SqlError)
            : Effect.die(defect),
        ),
      )

/** Retrying a write whose data must not be lost: backing off to every 5 s, for as long as it takes. */
export const UNTIL_STORED = Schedule.exponential("200 millis").pipe(
  Schedule.either(Schedule.spaced("5 seconds")),
  Schedule.jittered,
)
