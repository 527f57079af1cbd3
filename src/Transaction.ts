/**
 * Statements of several repositories made atomic: everything the effect runs on the database joins
 * one transaction (the SqlClient finds it on the fiber), committed when it succeeds and rolled back
 * when it fails. In memory (unit tests) the repositories' statements cannot fail halfway, so the
 * effect simply runs.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { orUnavailable, type ServiceUnavailable } from "./Domain/Errors.ts"
import { transaction } from "./Repository.ts"

export interface TransactionService {
  readonly atomically: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | ServiceUnavailable, R>
}

export class Transaction extends Context.Tag("Parley/Transaction")<Transaction, TransactionService>() {
  static readonly Live = Layer.effect(
    Transaction,
    Effect.map(SqlClient.SqlClient, (sql) => ({
      // BEGIN and COMMIT fail as statements do: an outage is a 503 (the repositories map their own).
      atomically: (self) =>
        Effect.catchIf(
          transaction(sql)(self),
          (e): e is SqlError.SqlError => e instanceof SqlError.SqlError,
          (e) => orUnavailable(Effect.fail(e)),
        ),
    })),
  )
  static readonly Test = Layer.succeed(Transaction, { atomically: (self) => self })
}
