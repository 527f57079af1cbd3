import { type HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Cause, Effect, Exit, FiberRef, LogLevel, Option } from "effect"
import { globalValue } from "effect/GlobalValue"
import { type ApiErrorInstance, errorResponse, InternalError, isApiError } from "../Domain/Errors.ts"
import { CurrentRequestId } from "../Domain/RequestId.ts"
import type { Held, LifecycleService } from "../Lifecycle.ts"
import type { Watched } from "../Sessions.ts"
import { type PendingReply, pendingReply } from "./BunServer.ts"

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

/** The log line of a request answered after its fiber ended. */
export type RequestLine = (
  method: string,
  url: string,
  requestId: string,
  started: number,
  status: number,
) => Effect.Effect<void>

type Answer = Response | Effect.Effect<HttpServerResponse.HttpServerResponse>

const RUNNING = 0
const PARKED = 1
const OVER = 2

/**
 * A request that may park. One object (its methods on the prototype, no closures): thousands of
 * them wait at once, each spread over heap blocks the garbage of the requests around it filled, and
 * every object a waiting request keeps keeps a block.
 */
class RequestParking implements Parking, Held {
  private phase: typeof RUNNING | typeof PARKED | typeof OVER = RUNNING
  private cancel: () => void = noop
  private finalizers: Array<() => void> | undefined = undefined
  /** An answer that came while `park` was still setting up (the fiber may yield in between). */
  private early: Answer | undefined = undefined
  private logs = false

  constructor(
    private readonly pending: PendingReply,
    readonly requestId: string,
    private readonly started: number,
    private readonly lifecycle: LifecycleService,
    private readonly cutOffResponse: (requestId: string) => Response,
    private readonly line: RequestLine,
  ) {}

  park(cancel: () => void): Effect.Effect<never> {
    return Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (level) => {
      this.logs = !LogLevel.lessThan(LogLevel.Info, level)
      this.phase = PARKED
      this.cancel = cancel
      // answered already (shutdown's cut-off): nothing to wait for
      if (this.pending.answered) {
        this.clientGone()
        return Effect.die(new Parked())
      }
      // the fiber's own response, made when it ends, goes nowhere; a client abort comes here
      this.pending.parked = this
      this.lifecycle.hold(this)
      if (this.pending.source.signal.aborted) this.clientGone()
      const early = this.early
      this.early = undefined
      if (early !== undefined) this.reply(early)
      return Effect.die(new Parked())
    })
  }

  reply(response: Answer): void {
    if (this.phase === OVER) return
    if (this.phase === RUNNING) {
      this.early = response
      return
    }
    if (response instanceof Response) {
      // the common case, many at once when a session changes: no fiber, no log record unless logged
      response.headers.set("x-request-id", this.requestId)
      if (this.logs) this.run(this.answered(response.status))
      this.send(response)
      return
    }
    this.run(
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
        Effect.tap((answer) => this.answered(answer.status)),
        Effect.map((answer) =>
          this.send(
            HttpServerResponse.toWeb(HttpServerResponse.setHeader(answer, "x-request-id", this.requestId)),
          ),
        ),
      ),
    )
  }

  finally(f: () => void): void {
    if (this.phase !== PARKED) f()
    else if (this.finalizers === undefined) this.finalizers = [f]
    else this.finalizers.push(f)
  }

  parked(): boolean {
    return this.phase !== RUNNING
  }

  /** Shutdown's time is up (Lifecycle). */
  cutOff(): void {
    if (this.phase === OVER) return
    this.cancel()
    this.send(this.cutOffResponse(this.requestId))
  }

  /** The client went away (BunServer). */
  clientGone(): void {
    if (this.end()) this.cancel()
  }

  private end(): boolean {
    if (this.phase === OVER) return false
    this.phase = OVER
    this.lifecycle.unhold(this)
    for (const f of this.finalizers ?? []) f()
    this.finalizers = undefined
    return true
  }

  private send(response: Response): void {
    if (this.end()) this.pending.send(response)
  }

  /** Its log line, if the level (as it was when the request parked) writes it. */
  private answered(status: number): Effect.Effect<void> {
    if (!this.logs) return Effect.void
    return this.line(
      this.pending.source.method,
      this.pending.source.url,
      this.requestId,
      this.started,
      status,
    )
  }

  /** Runs on the server's runtime, with the request's id. */
  private run<A>(effect: Effect.Effect<A>): void {
    this.pending.run(Effect.locally(effect, CurrentRequestId, this.requestId))
  }
}

const noop = () => {}

/**
 * The parking of `request`, when it has a pending reply to send later (else none: the request waits
 * on its fiber). While parked it is in flight for `lifecycle` (shutdown's cut-off answers it with
 * `cutOffResponse`); `line` logs each answer sent.
 */
export const parkingFor = (
  request: HttpServerRequest.HttpServerRequest,
  requestId: string,
  started: number,
  lifecycle: LifecycleService,
  cutOffResponse: (requestId: string) => Response,
  line: RequestLine,
): Option.Option<Parking> => {
  const pending = pendingReply(request)
  return pending === undefined
    ? Option.none()
    : Option.some(new RequestParking(pending, requestId, started, lifecycle, cutOffResponse, line))
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
    const wait = new ParkedWait<A, E>(current.value, toResponse)
    // Between the wait's start and parking nothing may interrupt: the wait would be left behind.
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(watch(wait.answer)), (watched) => {
        if (watched._tag === "Done") return Effect.succeed(watched.row)
        // It ended between the two: answered by the fiber after all.
        if (wait.early !== undefined) return wait.early
        wait.parked = true
        return wait.parking.park(watched.cancel)
      }),
    )
  })

/** The outcome of a parked wait, answered through its parking (what a waiting request keeps). */
class ParkedWait<A, E extends ApiErrorInstance> {
  parked = false
  early: Exit.Exit<A, E> | undefined = undefined
  constructor(
    readonly parking: Parking,
    private readonly toResponse: (value: A, requestId: string) => Response,
  ) {}

  readonly answer = (exit: Exit.Exit<A, E>): void => {
    if (!this.parked) this.early = exit
    else
      this.parking.reply(Exit.match(exit, { onSuccess: (value) => this.respond(value), onFailure: failure }))
  }

  private respond(value: A): Answer {
    try {
      return this.toResponse(value, this.parking.requestId)
    } catch (defect) {
      return Effect.die(defect) // answered 500 in the envelope, and logged
    }
  }
}

const failure = <E>(cause: Cause.Cause<E>): Answer => {
  const error = Cause.failureOption(cause)
  return Option.isSome(error) && isApiError(error.value)
    ? Effect.orDie(errorResponse(error.value))
    : Effect.orDie(Effect.failCause(cause))
}
