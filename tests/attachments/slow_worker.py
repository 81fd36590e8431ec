"""Tests only: a Celery worker whose file checks hold still once started, so a
test can kill the worker in the middle of one (tests/attachments/test_worker.py).

    python -m tests.attachments.slow_worker <seconds> worker -P solo -Q <queue> ...

The hold sits between the check's start (its attempt counted, the row committed)
and its run, where a worker killed leaves the file in "checking" for the sweep.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import django


def main() -> None:
    hold_seconds, celery_args = float(sys.argv[1]), sys.argv[2:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    django.setup()
    from chatsite.celery import app
    from conversations.attachments import pipeline

    check_run = pipeline._check_run

    @functools.wraps(check_run)
    def held(attachment):
        time.sleep(hold_seconds)
        return check_run(attachment)

    pipeline._check_run = held
    app.worker_main(celery_args)


if __name__ == "__main__":
    main()
