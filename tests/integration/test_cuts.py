"""Random cuts near the end of a streamed reply, with a reconnect to the other process.

Runs in the PostgreSQL + Redis pass of `make test`. The same trials as
`bench/cuts.py` (which documents the client and the verdicts), fewer of them:
each cuts the socket on one web process at a random moment of the reply, half
of them in its last second, reconnects at once to the other process and
resumes. Every reply must reach its end frame with the stored text, no frame
skipped and none sent twice.
"""

from __future__ import annotations

import os
import uuid

import pytest

from bench.cuts import run_cuts, site_running, summary

pytestmark = [
    pytest.mark.real_backends,
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL")
        or not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs in the PostgreSQL + Redis pass of make test",
    ),
]

CUTS = 40
SEED = 20240


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
async def test_replies_survive_random_cuts_with_a_reconnect_to_the_other_process(site):
    report = await run_cuts(site, cuts=CUTS, concurrency=4, seed=SEED)
    assert report.counts["ok"] == CUTS, summary(report)
