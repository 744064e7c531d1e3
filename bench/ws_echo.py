"""The floor for bench/push_latency.py: a bare websockets echo server (no auth, no Redis, no app).

    python bench/ws_echo.py PORT
"""
from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
