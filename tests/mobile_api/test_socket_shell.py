"""The socket shell at scale (issue 25): batched token checks and presence, one writer per socket,
a slow phone dropped and resumed with nothing missed."""
from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from redis import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dispatch import outbox
from mobile_api.connections import Batcher
from tests.mobile_api.conftest import ApiProcess, open_socket
from tests.waiting import until


async def test_a_batcher_checks_what_came_while_a_check_ran_in_one_go():
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    batch = Batcher(flush, most=3)
    got = await asyncio.gather(*(batch(i) for i in range(7)))
    assert got == [i * 10 for i in range(7)]  # each caller its own answer
    assert flushed == [[0, 1, 2], [3, 4, 5], [6]]  # one flush in flight, at most `most` each
    assert await batch(9) == 90 and flushed[-1] == [9]  # alone: at once


async def test_a_failed_batch_fails_each_caller_and_the_next_batch_goes_on():
    calls = 0

    async def flush(items):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return items

    batch = Batcher(flush)
    results = await asyncio.gather(batch("a"), batch("b"), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert await batch("c") == "c"


@pytest.fixture(scope="module")
def api_small_inbox(settings, district):
    p = ApiProcess(settings, env={"WS_SEND_QUEUE": "4"}).start()
    yield p
    p.stop()


async def test_a_phone_too_slow_for_its_inbox_is_dropped_and_resumes_with_nothing_missed(
        api_small_inbox, make_squad, own_team, redis_url):
    squad = make_squad(own_team)
    name = squad.name("police")
    headers = {"Authorization": squad.headers["police"]["Authorization"]}
    # A phone that reads nothing for now: its client buffers one message, then the kernel's fill.
    slow = await connect(api_small_inbox.ws + "/api/v1/ws", additional_headers=headers, compression=None,
                         max_queue=1, ping_interval=None)
    pad = "x" * 60_000
    outbox.publish(Redis.from_url(redis_url), [outbox.Push(name, "lead.updated", {"n": i, "pad": pad})
                                               for i in range(200)])
    await asyncio.sleep(1)
    seqs = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            m = orjson.loads(await asyncio.wait_for(slow.recv(), 30))
            if m["seq"] is not None:
                seqs.append(m["seq"])
    assert closed.value.rcvd.code == 4408  # too slow: resume
    assert len(seqs) < 200 and seqs == list(range(1, len(seqs) + 1))
    back = await open_socket(api_small_inbox.ws, headers, last_seq=seqs[-1])
    while seqs[-1] < 200:
        try:
            m = await back.recv("lead.updated")
        except ConnectionClosed:  # too slow again (the inbox holds 4): resume again
            back = await open_socket(api_small_inbox.ws, headers, last_seq=seqs[-1])
            continue
        seqs.append(m["seq"])
    assert seqs == list(range(1, 201))  # one by one, none missing, none twice
    await back.close()


async def test_a_socket_dropped_and_back_at_once_counts_as_online(api_a, make_squad, own_team, redis_url):
    from redis import Redis

    from dispatch import outbox
    squad = make_squad(own_team)
    name = squad.name("police")
    redis = Redis.from_url(redis_url)
    first = await open_socket(api_a.ws, squad.headers["police"])
    await until(lambda: redis.zscore(outbox.online_key(), name) is not None, 5, "online")
    for _ in range(5):  # the network blinks: gone without a close, back at once
        first.ws.transport.abort()
        first = await open_socket(api_a.ws, squad.headers["police"])
    await asyncio.sleep(0.5)
    assert redis.zscore(outbox.online_key(), name) is not None
    await first.close()
    await until(lambda: redis.zscore(outbox.online_key(), name) is None, 5, "offline once the socket left")


def test_publish_loads_its_script_into_a_redis_that_lost_it(redis_url):
    """A Redis restarted or flushed has no scripts: publishing loads it once and sends every push, in
    order, each once (seqs go on from the stream's counter)."""
    redis = Redis.from_url(redis_url)
    target = f"nobody-{uuid.uuid4().hex[:6]}"
    assert outbox.publish(redis, [outbox.Push(target, "lead.updated", {"n": 0})]) == [1]
    redis.script_flush()
    assert outbox.publish(redis, [outbox.Push(target, "lead.updated", {"n": i}) for i in (1, 2)]) == [2, 3]
    kept = redis.xrange(outbox.stream_key(target))
    assert [orjson.loads(fields[b"m"])["data"]["n"] for _id, fields in kept] == [0, 1, 2]
