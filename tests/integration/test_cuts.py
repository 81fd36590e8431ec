"""Random cuts near the end of a streamed reply, with a reconnect to the other process.

The real trials run in the PostgreSQL + Redis pass of `make test`: the same as
`bench/cuts.py` (which documents the client and the verdicts), fewer of them.
Each cuts the socket on one web process at a random moment of the reply, half
of them in its last second, reconnects at once to the other process and
resumes. Every reply must reach its end frame with the stored text, no frame
skipped and none sent twice.

The client's own rules are checked first, on frames written by hand, so a
verdict of "ok" means something.
"""

from __future__ import annotations

import os
import uuid

import pytest

from bench.cuts import Outcome, ReplyClient, SocketView, judge, run_cuts, site_running, summary

CUTS = 40
SEED = 20240
REPLY = "r-1"


def _created(seq: int = 0, text: str = "", status: str = "streaming") -> dict:
    return {
        "type": "message.created",
        "message": {
            "id": REPLY,
            "role": "assistant",
            "status": status,
            "seq": seq,
            "text": text,
            "thinking": "",
            "client_id": "",
        },
    }


def _delta(seq: int, text: str | None = None) -> dict:
    return {"type": "message.delta", "message_id": REPLY, "seq": seq, "text": text or f"w{seq} "}


def _completed(seq: int, text: str) -> dict:
    return {
        "type": "message.completed",
        "message_id": REPLY,
        "seq": seq,
        "status": "complete",
        "text": text,
        "thinking": "",
    }


def _verdict(client: ReplyClient, stored_text: str, status: str = "complete") -> Outcome:
    outcome = Outcome(index=0, first="a", cut_after=1.0, late=True)
    stored = {"id": REPLY, "status": status, "text": stored_text, "thinking": "", "seq": 4}
    judge(client, stored, outcome)
    return outcome


def _cut_after_two() -> tuple[ReplyClient, SocketView]:
    """Deltas 1 and 2 applied on A, then a reconnect to B resuming from 2."""
    client = ReplyClient("c-1")
    a = SocketView("A", resent=False)
    for frame in (_created(), _delta(1), _delta(2)):
        client.handle(frame, a)
    b = SocketView("B", resent=False)
    assert client.resume(b) == {"type": "resume", "message_id": REPLY, "last_seq": 2}
    return client, b


def test_a_reply_resumed_without_a_gap_or_a_repeat_is_ok():
    client, b = _cut_after_two()
    for frame in (_delta(3), _completed(4, "w1 w2 w3 ")):
        assert client.handle(frame, b) == []
    assert _verdict(client, "w1 w2 w3 ").verdict == "ok"


def test_a_frame_past_what_the_resume_declared_is_lost_and_the_client_resumes_once():
    client, b = _cut_after_two()
    assert client.handle(_delta(4), b) == [{"type": "resume", "message_id": REPLY, "last_seq": 2}]
    assert client.handle(_delta(5), b) == [], "one resume per gap"
    for frame in (_delta(3), _delta(4), _delta(5), _completed(6, "w1 w2 w3 w4 w5 ")):
        client.handle(frame, b)
    assert client.text == "w1 w2 w3 w4 w5 "
    assert _verdict(client, "w1 w2 w3 w4 w5 ").verdict == "lost"


def test_live_frames_in_flight_during_a_gaps_resume_may_come_again_in_its_answer():
    client, b = _cut_after_two()
    client.handle(_delta(4), b)  # a gap: resume from 2
    client.handle(_delta(5), b)  # sent before the server read the resume
    for frame in (_delta(3), _delta(4), _delta(5), _completed(6, "w1 w2 w3 w4 w5 ")):
        client.handle(frame, b)
    assert [f for f in client.faults if f[0] == "dup"] == []


def test_a_frame_at_or_below_the_resumed_seq_is_a_duplicate_and_not_applied():
    client, b = _cut_after_two()
    for frame in (_delta(2), _delta(3), _completed(4, "w1 w2 w3 ")):
        client.handle(frame, b)
    assert client.streamed[0] == "w1 w2 w3 "
    assert _verdict(client, "w1 w2 w3 ").verdict == "dup"


def test_no_end_frame_for_a_stored_final_reply_is_stuck():
    client, _ = _cut_after_two()
    assert _verdict(client, "w1 w2 w3 ").verdict == "stuck"


def test_an_end_frame_whose_text_differs_from_the_stored_reply_is_wrong():
    client, b = _cut_after_two()
    for frame in (_delta(3), _completed(4, "w1 w2 w3 ")):
        client.handle(frame, b)
    assert _verdict(client, "w1 w2 w3 more").verdict == "wrong"


def test_a_resend_answered_with_the_reply_already_final_ends_it():
    client = ReplyClient("c-1")
    b = SocketView("B", resent=True)
    user = {"id": "u-1", "role": "user", "status": "complete", "seq": 0, "client_id": "c-1"}
    client.handle({"type": "message.created", "message": user}, b)
    client.handle(_created(seq=4, text="w1 w2 w3 ", status="complete"), b)
    assert client.acked
    assert _verdict(client, "w1 w2 w3 ").verdict == "ok"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with site_running(
        database_url=os.environ["DATABASE_URL"],
        redis_url=os.environ["REDIS_URL"],
        prefix=f"cuts{uuid.uuid4().hex[:8]}",
        log_dir=tmp_path_factory.mktemp("cuts"),
    ) as running:
        yield running


@pytest.mark.timeout(300)
@pytest.mark.real_backends
@pytest.mark.skipif(
    not os.environ.get("REDIS_URL")
    or not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="runs in the PostgreSQL + Redis pass of make test",
)
async def test_replies_survive_random_cuts_with_a_reconnect_to_the_other_process(site):
    report = await run_cuts(site, cuts=CUTS, concurrency=4, seed=SEED)
    assert report.counts["ok"] == CUTS, summary(report)
