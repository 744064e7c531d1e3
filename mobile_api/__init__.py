"""REST and WebSocket API for police mobile clients (squads): offers, accept/decline, arrival,
outcome, resumable per-user message streams. Depends on `dispatch` and `geo`, never the reverse."""
