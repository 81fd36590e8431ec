"""`claude.files`: the site's Files API calls, as a Celery task makes them
(sync code through asgiref's async_to_sync), against the site's in-process fake."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

import claude.client
from claude.client import fake_app
from claude.errors import ClaudeError
from claude.files import file_delete, file_upload, files_api_available
from tests.claude_files.samples import pdf_bytes


@pytest.fixture
def shared_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The site's fake keeps its files where every process of the site finds them."""
    folder = tmp_path / "fake-claude-files"
    monkeypatch.setenv("FAKE_CLAUDE_FILES_DIR", str(folder))
    claude.client.claude_client_reset()
    return folder


def test_upload_and_delete_from_sync_code_twice_in_a_row(shared_files: Path) -> None:
    data = pdf_bytes(2)
    ids = [
        async_to_sync(file_upload)(data, filename="report.pdf", media_type="application/pdf")
        for _ in range(2)
    ]
    assert ids[0] != ids[1] and all(i.startswith("file_") for i in ids)
    for file_id in ids:
        metadata = fake_app().files.get(file_id)
        assert metadata is not None
        assert (metadata["filename"], metadata["mime_type"]) == ("report.pdf", "application/pdf")
        assert metadata["size_bytes"] == len(data)
    # On disk in the shared folder: a web process with the same setting sees them.
    assert sorted(p.name for p in shared_files.glob("*.json")) == sorted(f"{i}.json" for i in ids)
    # Each call closed its own client: none is left behind a loop that is gone.
    assert len(claude.client._clients) == 0

    for file_id in ids:
        async_to_sync(file_delete)(file_id)
        assert fake_app().files.get(file_id) is None
    # Deleting again (a task run twice) is not an error.
    async_to_sync(file_delete)(ids[0])


async def test_upload_from_the_web_loop_too(shared_files: Path) -> None:
    file_id = await file_upload(b"plain text", filename="notes.txt", media_type="text/plain")
    assert fake_app().files.get(file_id)["mime_type"] == "text/plain"
    await file_delete(file_id)


def test_api_errors_become_claude_errors(
    shared_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("claude.fake.app.MAX_UPLOAD_BYTES", 1024)
    with pytest.raises(ClaudeError) as caught:
        async_to_sync(file_upload)(b"\0" * 2048, filename="big.pdf", media_type="application/pdf")
    assert caught.value.api_error_type == "request_too_large"
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("provider", "available"),
    [("anthropic", True), ("fake", True), ("bedrock", False), ("vertex", False)],
)
def test_files_api_only_where_the_provider_has_it(
    settings: pytest.FixtureRequest, provider: str, available: bool
) -> None:
    settings.CLAUDE_PROVIDER = provider
    assert files_api_available() is available
    if not available:
        with pytest.raises(ClaudeError) as caught:
            async_to_sync(file_upload)(b"x", filename="a.txt", media_type="text/plain")
        assert caught.value.code == "bad_request"
        assert provider in caught.value.detail
