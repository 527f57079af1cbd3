import { type HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Cause, Effect, Exit, FiberRef, LogLevel, Option } from "effect"
import { globalValue } from "effect/GlobalValue"
import { type ApiErrorInstance, errorResponse, InternalError, isApiError } from "../Domain/Errors.ts"
import { CurrentRequestId } from "../Domain/RequestId.ts"
import type { Watched } from "../Sessions.ts"
import { pendingReply } from "./BunServer.ts"

/**
 * A long-poll that waits without its request fiber. The fiber ends once the wait is set up, and the
 * answer is sent later, from the callback that ends the wait, through the request's pending reply
 * (BunServer.ts). A waiting request then holds its connection, a callback and a deadline entry: not
 * a fiber, the continuations of every middleware it passed, nor the fiber refs and context it
 * gathered on its way (answers run on the server's runtime, with the request's id set again).
 */
export interface Parking {
  /**
   * From now on the request is answered by `reply`; the fiber ends (dies with `Parked`, which the
   * error middleware turns into a response nobody receives). `cancel` ends the wait when the client
   * goes away first.
   */
  readonly park: (cancel: () => void) => Effect.Effect<never>
  /**
   * Answers the parked request with `response`: made as is, or by an effect run on the server's
   * runtime with the request's id. Either way it gets the `X-Request-Id` header.
   */
  readonly reply: (response: Response | Effect.Effect<HttpServerResponse.HttpServerResponse>) => void
  readonly requestId: string
  /** Runs `f` when the request is answered or gone: at once unless it is parked and waiting. */
  readonly finally: (f: () => void) => void
  /** Whether the request fiber handed its answer over (its own response is not sent, nor logged). */
  readonly parked: () => boolean
}

/** The parking of the request being served, if it may park (a long-poll on Parley's Bun server). */
export const CurrentParking = globalValue("Parley/CurrentParking", () =>
  FiberRef.unsafeMake<Option.Option<Parking>>(Option.none()),
)

/** The defect a parked request's fiber ends with; never an error anybody sees. */
export class Parked {
  readonly _tag = "Parked"
}

/**
 * The parking of `request`, when it has a pending reply to send later (else none: the request waits
 * on its fiber). `hold` counts it in flight while parked (the returned function ends that), `cutOff`
 * is the answer shutdown sends when its time is up, `answered` runs with each answer sent.
 */
export const parkingFor = (
  request: HttpServerRequest.HttpServerRequest,
  requestId: string,
  hold: (cutOff: () => void) => () => void,
  cutOff: () => Response,
  answered: (status: number) => Effect.Effect<void>,
): Option.Option<Parking> => {
  const pending = pendingReply(request)
  if (pending === undefined) return Option.none()
  const state = {
    parked: false,
    over: false,
    finalizers: [] as Array<() => void>,
    cancel: () => {},
    release: () => {},
    /** An answer that came while `park` was still setting up (the fiber may yield in between). */
    early: undefined as Response | Effect.Effect<HttpServerResponse.HttpServerResponse> | undefined,
    logs: false,
  }
  const run = <A>(effect: Effect.Effect<A>) =>
    pending.run(Effect.locally(effect, CurrentRequestId, requestId))
  const end = () => {
    if (state.over) return false
    state.over = true
    state.release()
    for (const f of state.finalizers.splice(0)) f()
    return true
  }
  const onAbort = () => {
    if (!end()) return
    state.cancel()
  }
  const send = (response: Response) => {
    if (end()) pending.send(response)
  }
  const parking: Parking = {
    park: (cancel) =>
      Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (level) => {
        state.logs = !LogLevel.lessThan(LogLevel.Info, level)
        state.parked = true
        state.cancel = cancel
        // the fiber's own response, made when it ends, goes nowhere; a client abort comes here
        pending.parked = onAbort
        state.release = hold(() => {
          if (state.over) return
          state.cancel()
          send(cutOff())
        })
        if (pending.source.signal.aborted) onAbort()
        if (state.early !== undefined) parking.reply(state.early)
        return Effect.die(new Parked())
      }),
    requestId,
    reply: (response) => {
      if (state.over) return
      if (!state.parked) {
        state.early = response
        return
      }
      if (response instanceof Response) {
        // the common case, many at once when a session changes: no fiber, no log record unless logged
        response.headers.set("x-request-id", requestId)
        if (state.logs) run(answered(response.status))
        return send(response)
      }
      run(
        response.pipe(
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Effect.logError("unhandled failure", cause),
              Effect.orDie(
                errorResponse(
                  new InternalError({ message: "An internal error occurred; it has been logged." }),
                ),
              ),
            ),
          ),
          Effect.tap((answer) => answered(answer.status)),
          Effect.map((answer) =>
            send(HttpServerResponse.toWeb(HttpServerResponse.setHeader(answer, "x-request-id", requestId))),
          ),
        ),
      )
    },
    finally: (f) => {
      if (state.parked && !state.over) state.finalizers.push(f)
      else f()
    },
    parked: () => state.parked,
  }
  return Option.some(parking)
}

/**
 * A wait that can answer later: parked when this request may park (its fiber ends here and the
 * outcome, made into a response by `toResponse`, is sent when it comes), else `onFiber`.
 */
export const waitParked = <A, E extends ApiErrorInstance>(
  watch: (answer: (exit: Exit.Exit<A, E>) => void) => Effect.Effect<Watched<A>, E>,
  onFiber: Effect.Effect<A, E>,
  toResponse: (value: A, requestId: string) => Response,
): Effect.Effect<A, E> =>
  Effect.flatMap(FiberRef.get(CurrentParking), (current) => {
    if (Option.isNone(current)) return onFiber
    const parking = current.value
    const outcome: { early?: Exit.Exit<A, E>; parked: boolean } = { parked: false }
    const answer = (exit: Exit.Exit<A, E>) => {
      if (!outcome.parked) outcome.early = exit
      else
        parking.reply(
          Exit.match(exit, {
            onSuccess: (value): Response | Effect.Effect<HttpServerResponse.HttpServerResponse> => {
              try {
                return toResponse(value, parking.requestId)
              } catch (defect) {
                return Effect.die(defect) // answered 500 in the envelope, and logged
              }
            },
            onFailure: (cause) => {
              const failure = Cause.failureOption(cause)
              return Option.isSome(failure) && isApiError(failure.value)
                ? Effect.orDie(errorResponse(failure.value))
                : Effect.orDie(Effect.failCause(cause))
            },
          }),
        )
    }
    // Between the wait's start and parking nothing may interrupt: the wait would be left behind.
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(watch(answer)), (watched) => {
        if (watched._tag === "Done") return Effect.succeed(watched.row)
        // It ended between the two: answered by the fiber after all.
        if (outcome.early !== undefined) return outcome.early
        outcome.parked = true
        return parking.park(watched.cancel)
      }),
    )
  })
