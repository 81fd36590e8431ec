"""The fake's Message Batches store: batches on disk, shared by every process.

A web process submits a batch, a Celery worker polls it and another streams
its results, so the store cannot live in one process's memory (as the Files
store, `files.py`). Each batch is three entries in one folder:

- `<id>.json`: its state (the MessageBatch fields, plus what the fake needs);
- `<id>.requests.jsonl`: the requests as created, one a line;
- `<id>.results.jsonl`: the results, written once, when the batch ends.

Every file is written to a temporary name and renamed into place (results
before the state that points at them), so another process sees a batch whole or
not at all. A batch moves on when someone looks at it: the first look after its
processing delay ends it, under a per-batch lock file, so two processes looking
at once end it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The API's limits (section 4 of the shared reference): requests and bytes a batch.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000
EXPIRES_AFTER_SECONDS = 24 * 3600
RESULTS_CHUNK_BYTES = 64 * 1024
# Results come out in this many requests at a time, each group reversed: the API
# does not keep request order, and a client that relied on it should fail here.
_ORDER_GROUP = 1000

_ID_ALPHABET = string.ascii_letters + string.digits
# "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF": the API's shape, which also keeps a
# crafted id from naming a path outside the folder.
_BATCH_ID = re.compile(r"msgbatch_[A-Za-z0-9]{24}")
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


class BatchInputError(ValueError):
    """A create or list request the API would refuse with 400."""


class BatchStateError(ValueError):
    """An operation the batch's state does not allow (400 from the API)."""


def _timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_batch_id(value: object) -> bool:
    return isinstance(value, str) and _BATCH_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class BatchProcessor:
    """What the store asks of the app about one request.

    `held(params)`: the request waits until the batch is cancelled or expires
    (`[[fake hold=1]]`); `result(custom_id, params, version, batch_id)`: its
    result object, `{"type": "succeeded", "message": ...}` or errored/expired.
    """

    held: Callable[[dict[str, Any]], bool]
    result: Callable[[str, dict[str, Any], str, str], dict[str, Any]]


def parse_requests(payload: object) -> list[dict[str, Any]]:
    """The `requests` of a create body, checked as the API checks them up front
    (the params themselves are checked when the batch is processed: a bad one
    becomes an errored result, as on the API)."""
    if not isinstance(payload, dict):
        raise BatchInputError("Input should be a valid dictionary")
    for key in payload:
        if key != "requests":
            raise BatchInputError(f"{key}: Extra inputs are not permitted")
    requests = payload.get("requests")
    if requests is None:
        raise BatchInputError("requests: Field required")
    if not isinstance(requests, list):
        raise BatchInputError("requests: Input should be a valid list")
    if not requests:
        raise BatchInputError("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise BatchInputError(
            f"requests: List should have at most {MAX_BATCH_REQUESTS} items after validation, "
            f"not {len(requests)}"
        )
    seen: set[str] = set()
    for i, request in enumerate(requests):
        if not isinstance(request, dict):
            raise BatchInputError(f"requests.{i}: Input should be a valid dictionary")
        for key in request:
            if key not in ("custom_id", "params"):
                raise BatchInputError(f"requests.{i}.{key}: Extra inputs are not permitted")
        custom_id = request.get("custom_id")
        if custom_id is None:
            raise BatchInputError(f"requests.{i}.custom_id: Field required")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            raise BatchInputError(
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise BatchInputError(
                f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}'; each request in a "
                "batch must have a unique custom_id"
            )
        seen.add(custom_id)
        if "params" not in request:
            raise BatchInputError(f"requests.{i}.params: Field required")
        if not isinstance(request["params"], dict):
            raise BatchInputError(f"requests.{i}.params: Input should be a valid dictionary")
        if request["params"].get("stream"):
            raise BatchInputError(
                f"requests.{i}.params.stream: streaming is not supported in Message Batches"
            )
    return requests


class BatchStore:
    """Batches on disk under `root` (created on first use).

    Without a root the store gets a private temporary folder on first use, so a
    test's fake sees only its own batches and leaves nothing behind.
    `delay_seconds` is how long a batch takes to process.
    """

    def __init__(
        self, root: str | os.PathLike[str] | None = None, *, delay_seconds: float = 0
    ) -> None:
        self._root = Path(root) if root is not None else None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self.delay_seconds = delay_seconds

    @property
    def root(self) -> Path:
        if self._root is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="fake-claude-batches-")
            self._root = Path(self._temporary.name)
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def _path(self, batch_id: str, suffix: str) -> Path:
        return self.root / f"{batch_id}{suffix}"

    @staticmethod
    def _write_atomically(path: Path, chunks: Iterator[bytes] | bytes) -> None:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".batch-")
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(chunks, bytes):
                    handle.write(chunks)
                else:
                    for chunk in chunks:
                        handle.write(chunk)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _locked(self, batch_id: str) -> Iterator[None]:
        """Only one process moves a batch on at a time (an advisory lock file)."""
        fd = os.open(self._path(batch_id, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _state(self, batch_id: str) -> dict[str, Any] | None:
        if not is_batch_id(batch_id) or self._root is None:
            return None
        try:
            return json.loads(self._path(batch_id, ".json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def _save(self, state: dict[str, Any]) -> None:
        self._write_atomically(self._path(state["id"], ".json"), json.dumps(state).encode())

    # --- The operations ---

    def create(
        self,
        requests: list[dict[str, Any]],
        *,
        version: str,
        processor: BatchProcessor,
        delay_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Store a new batch (already checked by `parse_requests`); returns its state."""
        batch_id = "msgbatch_01" + "".join(random.choices(_ID_ALPHABET, k=22))
        now = time.time()
        held = [r["custom_id"] for r in requests if processor.held(r["params"])]
        self._write_atomically(
            self._path(batch_id, ".requests.jsonl"),
            (json.dumps(r).encode() + b"\n" for r in requests),
        )
        state = {
            "id": batch_id,
            "created": now,
            "due": now + (self.delay_seconds if delay_seconds is None else delay_seconds),
            "expires": now + EXPIRES_AFTER_SECONDS,
            "ended": None,
            "cancel_initiated": None,
            "status": "in_progress",
            "total": len(requests),
            "held": held,
            "counts": None,
            "version": version,
        }
        self._save(state)
        return state

    def get(self, batch_id: str, processor: BatchProcessor) -> dict[str, Any] | None:
        """A batch's state, moved on to now (ended once it is due); None if unknown."""
        state = self._state(batch_id)
        if state is None or state["status"] == "ended":
            return state
        if not self._ready_to_end(state, time.time()):
            return state
        with self._locked(batch_id):
            state = self._state(batch_id)  # another process may have ended it meanwhile
            if state is not None and state["status"] != "ended":
                if self._ready_to_end(state, time.time()):
                    self._end(state, processor)
        return state

    @staticmethod
    def _ready_to_end(state: dict[str, Any], now: float) -> bool:
        if now >= state["expires"] or state["status"] == "canceling":
            return True
        return now >= state["due"] and not state["held"]

    def _end(self, state: dict[str, Any], processor: BatchProcessor) -> None:
        """Write the results, then the ended state that points at them."""
        now = time.time()
        expiring = now >= state["expires"]
        # Cancelled before the delay: nothing had been processed yet.
        canceled_all = state["status"] == "canceling" and state["cancel_initiated"] < state["due"]
        held = set(state["held"])
        counts = dict.fromkeys(_COUNT_KEYS, 0)

        def result_for(request: dict[str, Any]) -> dict[str, Any]:
            custom_id = request["custom_id"]
            if expiring and (custom_id in held or now < state["due"]):
                return {"type": "expired"}
            if canceled_all or custom_id in held:
                return {"type": "canceled"}
            return processor.result(custom_id, request["params"], state["version"], state["id"])

        def lines() -> Iterator[bytes]:
            group: list[bytes] = []
            for request in self._requests(state["id"]):
                result = result_for(request)
                counts[result["type"]] += 1
                group.append(
                    json.dumps({"custom_id": request["custom_id"], "result": result}).encode()
                    + b"\n"
                )
                if len(group) >= _ORDER_GROUP:
                    yield b"".join(reversed(group))
                    group = []
            yield b"".join(reversed(group))

        self._write_atomically(self._path(state["id"], ".results.jsonl"), lines())
        state.update(status="ended", ended=now, counts=counts)
        self._save(state)

    def _requests(self, batch_id: str) -> Iterator[dict[str, Any]]:
        with self._path(batch_id, ".requests.jsonl").open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def cancel(self, batch_id: str, processor: BatchProcessor) -> dict[str, Any] | None:
        """Start cancelling: `canceling` now, ended (with what was done) on the next look."""
        state = self.get(batch_id, processor)
        if state is None or state["status"] != "in_progress":
            return state
        with self._locked(batch_id):
            state = self._state(batch_id)
            if state is not None and state["status"] == "in_progress":
                state.update(status="canceling", cancel_initiated=time.time())
                self._save(state)
        return state

    def delete(self, batch_id: str, processor: BatchProcessor) -> bool:
        """Remove an ended batch; False if unknown. BatchStateError while it runs."""
        state = self.get(batch_id, processor)
        if state is None:
            return False
        if state["status"] != "ended":
            raise BatchStateError(
                f"Message batch {batch_id} cannot be deleted while it is still processing; "
                "cancel it first."
            )
        with self._locked(batch_id):
            self._path(batch_id, ".json").unlink(missing_ok=True)
            self._path(batch_id, ".results.jsonl").unlink(missing_ok=True)
            self._path(batch_id, ".requests.jsonl").unlink(missing_ok=True)
        self._path(batch_id, ".lock").unlink(missing_ok=True)
        return True

    def results_chunks(self, batch_id: str) -> Iterator[bytes]:
        """The results file of an ended batch, a chunk at a time (never whole in memory)."""
        with self._path(batch_id, ".results.jsonl").open("rb") as handle:
            while chunk := handle.read(RESULTS_CHUNK_BYTES):
                yield chunk

    def _all(self) -> list[dict[str, Any]]:
        if self._root is None or not self._root.is_dir():
            return []
        states = []
        for path in self._root.glob("msgbatch_*.json"):
            try:
                states.append(json.loads(path.read_bytes()))
            except (FileNotFoundError, ValueError):
                continue  # deleted or being written by another process
        # Newest first, as the API lists; the id breaks ties.
        states.sort(key=lambda s: (s["created"], s["id"]), reverse=True)
        return states

    def page(
        self, *, limit: int | None, after_id: str | None, before_id: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of `GET /v1/messages/batches` (newest first) and whether more follow."""
        if limit is None:
            limit = DEFAULT_LIST_LIMIT
        if limit < 1:
            raise BatchInputError("limit: Input should be greater than or equal to 1")
        if limit > MAX_LIST_LIMIT:
            raise BatchInputError(f"limit: Input should be less than or equal to {MAX_LIST_LIMIT}")
        states = self._all()
        ids = [s["id"] for s in states]
        if after_id is not None:
            start = ids.index(after_id) + 1 if after_id in ids else len(ids)
            rest = states[start:]
            return rest[:limit], len(rest) > limit
        if before_id is not None:
            end = ids.index(before_id) if before_id in ids else 0
            rest = states[:end]
            return rest[-limit:], len(rest) > limit
        return states[:limit], len(states) > limit


def batch_object(state: dict[str, Any], *, results_base: str) -> dict[str, Any]:
    """The API's MessageBatch for a stored state. `results_base`: scheme and host the
    request came to, so `results_url` points back at this server."""
    ended = state["status"] == "ended"
    if ended:
        counts = state["counts"]
    else:
        counts = {**dict.fromkeys(_COUNT_KEYS, 0), "processing": state["total"]}
    return {
        "id": state["id"],
        "type": "message_batch",
        "processing_status": state["status"],
        "request_counts": {key: counts[key] for key in _COUNT_KEYS},
        "created_at": _timestamp(state["created"]),
        "expires_at": _timestamp(state["expires"]),
        "ended_at": _timestamp(state["ended"]),
        "archived_at": None,
        "cancel_initiated_at": _timestamp(state["cancel_initiated"]),
        "results_url": (
            f"{results_base}/v1/messages/batches/{state['id']}/results" if ended else None
        ),
    }
