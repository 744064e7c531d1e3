"""The floors for bench/push_latency.py: a bare websockets echo server (no auth, no app); with a
Redis URL and channel, also a bare fan-out: every message published on the channel is written to
every connected socket (no streams, no seqs, no auth) — the API's fan-out at its plainest.

    python bench/ws_echo.py PORT [REDIS_URL CHANNEL]
"""
from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import serve

CLIENTS: set = set()


async def echo(ws) -> None:
    CLIENTS.add(ws)
    try:
        async for message in ws:
            await ws.send(message)
    finally:
        CLIENTS.discard(ws)


async def fan_out(redis_url: str, channel: str, ready: asyncio.Event) -> None:
    from redis.asyncio import Redis

    pubsub = Redis.from_url(redis_url).pubsub()
    await pubsub.subscribe(channel)
    ready.set()
    async for m in pubsub.listen():
        if m["type"] == "message":
            for ws in list(CLIENTS):
                await ws.send(m["data"].decode())


async def main(port: int, redis_url: str | None, channel: str | None) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(fan_out(redis_url, channel, ready)) if redis_url else None
    if task is None:
        ready.set()
    async with serve(echo, "127.0.0.1", port, compression=None):
        await ready.wait()
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), *(sys.argv[2:4] if len(sys.argv) >= 4 else (None, None))))
