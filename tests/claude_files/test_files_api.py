"""The fake's Files API, driven by the real SDK: shapes, paging, errors, and one
store shared by every app (and process) given the same folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import pytest
from anthropic.types.file_not_downloadable_error import FileNotDownloadableError

import claude.fake.app
from claude.fake import create_fake_app
from claude.fake.app import FakeClaude, default_files_dir
from tests.claude_files.conftest import make_client
from tests.claude_files.samples import file_block, image_bytes, pdf_bytes

MODEL = "claude-sonnet-5-5"
FILE_ID = re.compile(r"file_011C[A-Za-z0-9]{20}")


async def test_upload_answers_the_api_file_metadata(client: anthropic.AsyncAnthropic) -> None:
    data = pdf_bytes(2)
    before = datetime.now(UTC)
    response = await client.files.with_raw_response.upload(
        file=("report.pdf", data, "application/pdf")
    )
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_01")
    raw = json.loads(await response.read())
    assert set(raw) == {
        "id",
        "type",
        "filename",
        "mime_type",
        "size_bytes",
        "created_at",
        "downloadable",
        "expires_at",
    }
    assert FILE_ID.fullmatch(raw["id"])
    assert raw["created_at"].endswith("Z")
    metadata = await response.parse()
    assert metadata.type == "file"
    assert metadata.filename == "report.pdf"
    assert metadata.mime_type == "application/pdf"
    assert metadata.size_bytes == len(data)
    assert metadata.downloadable is False
    assert metadata.expires_at is None
    assert before - timedelta(seconds=1) <= metadata.created_at <= datetime.now(UTC)


async def test_upload_with_expiry_and_name_rules(client: anthropic.AsyncAnthropic) -> None:
    metadata = await client.files.upload(
        file=("../../etc/notes.md", b"# Notes\n", "text/markdown"), expires_in_seconds=3600
    )
    # Only the last path component of the name is kept, as the API does.
    assert metadata.filename == "notes.md"
    assert metadata.mime_type == "text/markdown"
    assert metadata.expires_at is not None
    assert abs((metadata.expires_at - metadata.created_at).total_seconds() - 3600) < 1

    guessed = await client.files.upload(file=("photo.png", image_bytes(4, 4), None))
    assert guessed.mime_type == "image/png"

    for seconds, message in ((60, "greater than or equal to 3600"), (10**8, "less than or equal")):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.files.upload(
                file=("a.txt", b"x", "text/plain"), expires_in_seconds=seconds
            )
        assert caught.value.type == "invalid_request_error"
        assert f"expires_in_seconds: Input should be {message}" in str(caught.value)


async def test_retrieve_download_and_delete(client: anthropic.AsyncAnthropic) -> None:
    uploaded = await client.files.upload(file=("a.txt", b"hello", "text/plain"))
    assert await client.files.retrieve_metadata(uploaded.id) == uploaded

    # Uploaded files are never downloadable: the API's 400 with its error code,
    # which SDK 2.x turns into its own class.
    with pytest.raises(FileNotDownloadableError) as caught:
        await client.files.download(uploaded.id)
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["details"] == {"error_code": "file_not_downloadable"}

    deleted = await client.files.delete(uploaded.id)
    assert (deleted.id, deleted.type) == (uploaded.id, "file_deleted")
    for call in (client.files.retrieve_metadata, client.files.delete, client.files.download):
        with pytest.raises(anthropic.NotFoundError) as missing:
            await call(uploaded.id)
        assert missing.value.type == "not_found_error"
        assert uploaded.id in str(missing.value)


@pytest.mark.parametrize("file_id", ["file_011CNha8iCJcU1wXNR6q4V8w", "..%2F..%2Fsecret", "nope"])
async def test_unknown_ids_are_404(client: anthropic.AsyncAnthropic, file_id: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.files.retrieve_metadata(file_id)
    assert caught.value.body["error"]["type"] == "not_found_error"


async def test_list_pages_newest_first_with_a_cursor(client: anthropic.AsyncAnthropic) -> None:
    ids = [(await client.files.upload(file=(f"{n}.txt", b"x", "text/plain"))).id for n in range(5)]
    newest_first = ids[::-1]

    first = await client.files.list(limit=2)
    assert [f.id for f in first.data] == newest_first[:2]
    assert first.next_page is not None and first.next_page.startswith("page_")
    raw = await client.files.with_raw_response.list(limit=2)
    assert set(json.loads(await raw.read())) == {"data", "next_page"}

    # The SDK follows `next_page` through `page=` until it is null.
    assert [f.id async for f in await client.files.list(limit=2)] == newest_first
    last = await client.files.list(limit=2, page=(await client.files.list(limit=4)).next_page)
    assert [f.id for f in last.data] == newest_first[4:]
    assert last.next_page is None

    chosen = await client.files.list(ids=[ids[0], ids[3], "file_011CNha8iCJcU1wXNR6q4V8w"])
    assert sorted(f.id for f in chosen.data) == sorted([ids[0], ids[3]])

    for bad in ({"limit": 0}, {"limit": 1001}, {"page": "garbage"}):
        with pytest.raises(anthropic.BadRequestError):
            await client.files.list(**bad)


async def test_upload_over_the_limit_is_413(
    client: anthropic.AsyncAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's limit is 500 MB; a smaller one keeps the test fast, same code path.
    monkeypatch.setattr(claude.fake.app, "MAX_UPLOAD_BYTES", 1024 * 1024)
    with pytest.raises(anthropic.RequestTooLargeError) as caught:
        await client.files.upload(file=("big.bin", b"\0" * (1024 * 1024 + 1), "image/png"))
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"
    assert (await client.files.list()).data == []


async def test_upload_without_a_file_is_400(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.post(
            "/v1/files",
            cast_to=object,
            body={"purpose": "x"},
            options={"headers": {"Content-Type": "multipart/form-data"}},
            files=[("other", ("a.txt", b"x", "text/plain"))],
        )
    assert "file: Field required" in str(caught.value)


async def test_two_apps_on_one_folder_share_files(files_dir: Path) -> None:
    worker = make_client(create_fake_app(files_dir=files_dir))
    web = make_client(create_fake_app(files_dir=files_dir))
    uploaded = await worker.files.upload(file=("shot.png", image_bytes(320, 200), "image/png"))

    assert (await web.files.retrieve_metadata(uploaded.id)).filename == "shot.png"
    reply = await web.messages.create(
        model=MODEL,
        max_tokens=300,
        messages=[
            {
                "role": "user",
                "content": [file_block("image", uploaded.id), {"type": "text", "text": "What?"}],
            }
        ],
    )
    assert "an image of 320×200 px" in reply.content[0].text

    await web.files.delete(uploaded.id)
    with pytest.raises(anthropic.NotFoundError):
        await worker.files.retrieve_metadata(uploaded.id)
    # A file deleted by another process is gone for messages too.
    with pytest.raises(anthropic.BadRequestError, match="File not found"):
        await worker.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": [file_block("image", uploaded.id)]}]
        )


async def test_a_file_uploaded_by_another_process_is_seen(files_dir: Path) -> None:
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from claude.fake import create_fake_app
from tests.claude_files.conftest import make_client
async def main():
    client = make_client(create_fake_app(files_dir={str(files_dir)!r}))
    print((await client.files.upload(file=("w.txt", b"from the worker", "text/plain"))).id)
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    file_id = done.stdout.strip()
    web = make_client(create_fake_app(files_dir=files_dir))
    metadata = await web.files.retrieve_metadata(file_id)
    assert (metadata.filename, metadata.size_bytes) == ("w.txt", len(b"from the worker"))


def test_the_demo_fake_keeps_files_in_the_var_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FAKE_CLAUDE_FILES_DIR", raising=False)
    monkeypatch.setenv("CHAT_VAR_DIR", str(tmp_path / "var"))
    assert default_files_dir() == tmp_path / "var" / "fake-claude-files"
    monkeypatch.setenv("FAKE_CLAUDE_FILES_DIR", str(tmp_path / "shared"))
    assert default_files_dir() == tmp_path / "shared"
    assert claude.fake.app.fake_app_from_env().files.root == tmp_path / "shared"


async def test_an_app_without_a_folder_keeps_its_files_private() -> None:
    first, second = create_fake_app(), create_fake_app()
    uploaded = await make_client(first).files.upload(file=("a.txt", b"x", "text/plain"))
    assert first.files.get(uploaded.id) is not None
    assert isinstance(second, FakeClaude) and second.files.get(uploaded.id) is None
