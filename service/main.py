"""The app factory: wires settings, storage, queues and the routers of every package."""
from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.ext.asyncio import async_sessionmaker

from dispatch import outbox
from dispatch.access import district_guard
from dispatch.city.router import router as city_router
from dispatch.field.router import router as field_router
from dispatch.field.squads import FieldConfig
from dispatch.intake.repository import GroupWriter
from dispatch.intake.router import push_lead_direct
from dispatch.intake.router import router as leads_router
from dispatch.intake.schemas import BatchIn, LeadIn
from dispatch.ladder.phone_router import router as phone_router
from dispatch.ladder.protect_router import router as protect_router
from dispatch.ladder.router import router as ladder_router
from dispatch.ladder.sms_router import router as sms_router
from dispatch.outcomes.review_router import router as reviews_router
from dispatch.outcomes.router import router as outcomes_router
from dispatch.policy import load_policy
from dispatch.shift.router import router as shift_router
from dispatch.triage.router import router as triage_router
from geo.router import router as geo_router
from geo.store import IndexCache
from mobile_api.connections import Hub
from mobile_api.router import router as squads_router
from mobile_api.ws import board_socket, squad_socket
from mobile_api.ws import router as ws_router
from service.auth_router import router as auth_router
from service.core.auth import ApiKeyCache, check_current_many
from service.core.db import make_async_engine, make_intake_pool, timeouts
from service.core.errors import install_error_handlers
from service.core.fastpath import App, FastRoutes
from service.core.limits import BodyLimit
from service.core.logging import configure_logging
from service.core.redis import make_async_redis, make_redis
from service.core.runtime import Urls
from service.core.settings import Settings, get_settings, secret_problem
from service.core.signin import SignInLimits
from service.docs import install_docs
from service.health import router as health_router
from service.ui.router import mount_ui
from workers.queues import AfterCommit, lead_queue, send, urgent_queue


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be set (`quanzu serve` starts embedded servers "
                               "when they are not)")
        if problem := secret_problem(settings.secret_key):  # `uvicorn service.asgi:app` as well as `quanzu serve`
            raise RuntimeError(problem)
        urls = Urls(settings.database_url, settings.redis_url)
        state = app.state
        state.urls = urls
        limits = timeouts(settings.statement_timeout_ms, settings.lock_timeout_ms)
        state.engine = make_async_engine(urls.database_url, settings.db_pool_size, limits)
        state.intake_pool = await make_intake_pool(urls.database_url, settings.intake_pool_size, limits)
        state.lead_writer = GroupWriter(state.intake_pool, max_pending=settings.intake_max_pending,
                                        in_flight=settings.intake_writes_in_flight)
        state.sessionmaker = async_sessionmaker(state.engine, expire_on_commit=False)
        redis_timeouts = (settings.redis_connect_timeout_seconds, settings.redis_socket_timeout_seconds)
        state.redis = make_redis(urls.redis_url, *redis_timeouts)
        state.aredis = make_async_redis(urls.redis_url, *redis_timeouts)
        state.signin_limits = SignInLimits(state.aredis, settings)
        queue = lead_queue(state.redis, settings.queue_name)
        state.after_commit = AfterCommit(queue, settings.enqueue_linger_seconds, urgent_queue(state.redis),
                                         settings.urgent_spacing_seconds)
        # The policy, loaded once for this process and handed to every route that decides with it.
        state.policy = load_policy(settings.policy_file)
        state.field_config = FieldConfig.of(settings, state.policy)
        # The outbox: what a request's unit of work queued (pushes, SMS, visits) leaves after its commit.
        state.on_commit = lambda session: send(outbox.take(session), state.redis, queue,
                                               settings.sms_retry_intervals)
        # The sockets' fan-out listens on pub/sub for as long as the process lives: a socket timeout
        # would end every idle subscription (and resync every socket) after a few quiet seconds.
        state.hub_redis = make_async_redis(urls.redis_url, settings.redis_connect_timeout_seconds, None)
        state.hub = Hub(state.hub_redis, settings.ws_replay_hours, on_keys_changed=app.state.api_keys.clear,
                        check_tokens=lambda tokens: check_current_many(state.intake_pool, tokens),
                        ping_seconds=settings.ws_ping_seconds, recheck_seconds=settings.ws_recheck_seconds)
        await state.hub.start()
        # Startup objects live as long as the process: keep them out of every GC pass. The young
        # generation is collected when allocations outnumber deallocations by the threshold; a
        # 1,000-lead batch holds ~25,000 containers until it is answered (all freed by refcount),
        # so at 20,000 four batches in flight set off a 15 ms pass every few batches (~10 % of the
        # server's CPU), at 100,000 almost never. Measured: BENCHMARKS.md, "Before and after issue 11
        # on a quiet machine".
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 20, 20)
        try:
            yield
        finally:
            await state.hub.stop()
            await state.hub_redis.aclose()
            await state.after_commit.drain()
            await state.aredis.aclose()
            state.redis.close()
            await state.intake_pool.close()
            await state.engine.dispose()

    # FastAPI's native OpenTelemetry is off: quanzu exports its own Prometheus metrics (/metrics), and
    # asking OpenTelemetry's three global providers on every request was 3 % of a push's CPU.
    app = App(title="quanzu 劝阻", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
              description="Warning-and-dissuasion dispatch for a district anti-fraud center (反诈中心).",
              telemetry={"tracing": False, "metrics": False, "logs": False})
    app.sockets = {"/api/v1/ws": squad_socket, "/api/v1/board/ws": board_socket}  # before any middleware
    app.state.settings = settings
    app.state.api_keys = ApiKeyCache(settings.api_key_cache_seconds, settings.sms_gateway_key_name)
    app.state.beat_index = IndexCache()
    # The single push, measured against a bare FastAPI echo (bench/ingest.py), skips the routing
    # of every route and the dependency solving; inside the body limit, which still applies.
    app.add_middleware(FastRoutes, routes={("POST", "/api/v1/leads"): push_lead_direct})
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    for router in (health_router, auth_router, ws_router):
        app.include_router(router)
    # Every API router: a district's caller naming another district's row in a path gets 404 (access.py).
    guarded = [Depends(district_guard)]
    for router in (leads_router, triage_router, ladder_router, field_router, geo_router, squads_router,
                   outcomes_router, shift_router, protect_router, phone_router, sms_router, reviews_router, city_router):
        app.include_router(router, dependencies=guarded)
    install_docs(app)  # /docs and /redoc from vendored assets: nothing loaded from outside
    mount_ui(app)  # last: the pages and /ui assets; every API route above keeps its path

    def openapi() -> dict:
        # Intake reads raw JSON (to answer every defect with a 422 naming the field), so its
        # body schemas are added to the document here.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (LeadIn, BatchIn):
                s = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(s.pop("$defs", {}))
                components[model.__name__] = s
            # How callers authenticate (service.core.auth), so generated clients can send it; each
            # route's summary says which roles may call it, and 401/403 are documented per route.
            schema["components"]["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "Upstream sources: `quanzu create-api-key --name NAME`"},
                "Bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "People: POST /api/v1/auth/token"}}
            schema["security"] = [{"Bearer": []}, {"ApiKey": []}, {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app
