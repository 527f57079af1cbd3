import { HttpApiBuilder, HttpApiScalar } from "@effect/platform"
import { Layer } from "effect"
import { AgentsHttpLive } from "./Agents/Http.ts"
import { Agents } from "./Agents.ts"
import { Api } from "./Api.ts"
import { AdminHttpLive } from "./Auth/AdminHttp.ts"
import { ApiKeys } from "./Auth/ApiKeys.ts"
import { AdminAuthenticatedLive, AuthenticatedLive } from "./Auth/Middleware.ts"
import { ErrorMappingLive, withRequestId } from "./Http.ts"
import { OpsHttpLive } from "./Ops/Http.ts"
import { VoicesHttpLive } from "./Voices/Http.ts"

/** The HttpApi with every handler and the services behind them. Needs AppConfig and SqlClient. */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([OpsHttpLive, VoicesHttpLive, AgentsHttpLive, AdminHttpLive]),
  Layer.provide([AuthenticatedLive, AdminAuthenticatedLive]),
  Layer.provide(Agents.Live),
  Layer.provideMerge(ApiKeys.Live),
)

/** Serves the API, /openapi.json and /docs on whatever HttpServer is provided. */
export const ServerLive = HttpApiBuilder.serve(withRequestId).pipe(
  Layer.provide([
    HttpApiScalar.layer({ path: "/docs" }),
    HttpApiBuilder.middlewareOpenApi(),
    ErrorMappingLive,
  ]),
  Layer.provideMerge(ApiLive),
)
