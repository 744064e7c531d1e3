"""The socket protocol's pure core, driven without sockets (sans-I/O)."""
from __future__ import annotations

import orjson

from mobile_api import protocol as p


def _msg(seq: int, type_: str = "offer", **data) -> tuple[int, str]:
    return seq, orjson.dumps({"type": type_, "seq": seq, "ts": "t", "data": data}).decode()


def _opened(last_seq=None) -> p.ServerProtocol:
    proto = p.ServerProtocol()
    assert proto.receive(orjson.dumps({"type": "hello", "token": "tok", "last_seq": last_seq})) == [
        p.Authenticate("tok")]
    assert proto.authenticated("alice") == [p.Replay(last_seq or 0)]
    return proto


def test_hello_first_else_closed():
    proto = p.ServerProtocol()
    assert proto.receive('{"type": "ack", "seq": 1}') == [
        p.Close(p.UNAUTHORIZED, "authenticate first: send hello with a token")]
    assert proto.phase is p.Phase.CLOSED
    assert proto.receive('{"type": "hello", "token": "x"}') == []  # closed stays closed
    assert p.ServerProtocol().receive("not json")[0].code == p.PROTOCOL
    assert p.ServerProtocol().receive('{"type": "hello"}')[0].code == p.UNAUTHORIZED
    assert p.ServerProtocol().receive('{"type": "hello", "token": "t", "last_seq": -1}')[0].code == p.PROTOCOL
    timed_out = p.ServerProtocol()
    assert timed_out.hello_timeout() == [p.Close(p.UNAUTHORIZED, "no hello within the time allowed")]
    assert p.ServerProtocol().auth_failed("bad")[0] == p.Close(p.UNAUTHORIZED, "bad")


def test_header_auth_opens_with_a_replay_from_the_query_last_seq():
    proto = p.ServerProtocol(authenticated_as="bob", last_seq=7)
    assert proto.start() == [p.Replay(7)]
    assert proto.phase is p.Phase.OPEN


def test_delivery_in_order_drops_duplicates_and_replays_gaps():
    proto = _opened(2)
    assert proto.deliver(*_msg(2)) == []  # the client had it
    s3 = _msg(3, "assignment.updated")
    assert proto.deliver(*s3) == [p.Send(s3[1])]
    assert proto.deliver(*_msg(5)) == [p.Replay(3)]  # 4 went missing on the fast path
    assert proto.last_sent == 3
    s4, s5 = _msg(4, "lead.updated"), _msg(5, "offer", assignment_id=9)
    assert proto.deliver(*s4, replayed=True) == [p.Send(s4[1])]
    assert proto.deliver(*s5, replayed=True) == [p.Send(s5[1]), p.Pushed((9,))]
    assert proto.deliver(*s5) == []  # and the live copy is not sent twice
    # A replay may jump where the stream no longer holds messages (older than the window).
    s9 = _msg(9, "lead.updated")
    assert proto.deliver(*s9, replayed=True) == [p.Send(s9[1])]


def test_ack_is_cumulative_and_reports_the_offers_acked():
    proto = _opened()
    for seq, aid in ((1, 11), (2, None), (3, 12)):
        proto.deliver(*(_msg(seq, "offer", assignment_id=aid) if aid else _msg(seq, "lead.updated")))
    assert proto.receive('{"type": "ack", "seq": 2}') == [p.Acked((11,))]
    assert proto.receive('{"type": "ack", "seq": 99}') == [p.Acked((12,))]  # capped at what was sent
    assert proto.acked == 3
    assert proto.receive('{"type": "ack", "seq": 3}') == []
    bad = proto.receive('{"type": "ack", "seq": "x", "id": 5}')[0]
    assert orjson.loads(bad.text)["ok"] is False and orjson.loads(bad.text)["id"] == 5


def test_commands_are_checked_then_handed_to_the_shell():
    proto = _opened()
    assert proto.receive('{"type": "accept", "assignment_id": 4, "id": "c1"}') == [
        p.Command("accept", "c1", {"assignment_id": 4})]
    for bad in ('{"type": "accept", "id": 1}', '{"type": "accept", "assignment_id": true, "id": 1}',
                '{"type": "accept", "assignment_id": 0, "id": 1}', '{"type": "fly", "id": 1}',
                '{"type": "hello", "token": "x", "id": 1}', '[1]'):
        out = proto.receive(bad)
        assert len(out) == 1 and isinstance(out[0], p.Send), bad
        reply = orjson.loads(out[0].text)
        assert reply["type"] == "result" and reply["ok"] is False and reply["seq"] is None
    assert proto.receive('{"type": "location", "lon": 1, "lat": 2, "id": 3}') == [
        p.Command("location", 3, {"lon": 1, "lat": 2})]
    board = p.ServerProtocol(board=True, authenticated_as="cmd")
    board.start()
    assert orjson.loads(board.receive('{"type": "accept", "assignment_id": 1}')[0].text)["ok"] is False


def test_overflow_closes_so_the_client_resumes():
    proto = _opened()
    assert proto.overflow()[0].code == p.SLOW
    assert proto.deliver(*_msg(1)) == []
