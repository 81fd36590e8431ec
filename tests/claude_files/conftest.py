from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from claude.fake import StreamingASGITransport, create_fake_app
from claude.fake.app import FakeClaude


def make_client(app: Any) -> anthropic.AsyncAnthropic:
    """The real SDK, in process, against `app`."""
    return anthropic.AsyncAnthropic(
        api_key="test",
        base_url="http://fake",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=StreamingASGITransport(app=app)),
    )


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "fake-claude-files"


@pytest.fixture
def app(files_dir: Path) -> FakeClaude:
    return create_fake_app(files_dir=files_dir)


@pytest.fixture
def client(app: FakeClaude) -> anthropic.AsyncAnthropic:
    return make_client(app)
