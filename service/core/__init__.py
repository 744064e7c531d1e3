"""The ground floor: settings, storage, Redis, errors, auth, logging and responses.

Every package (geo, dispatch, mobile_api, workers) may import from here; nothing here imports
the roof (service.main, service.cli, service.health, service.auth_router, service.migrations)."""
