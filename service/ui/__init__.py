"""The pages: the command-center screen at `/` and the squads' phone page at `/m/` (static files,
no build step; they use only the public REST and WebSocket API)."""
