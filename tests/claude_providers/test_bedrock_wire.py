"""The fake speaks Amazon Bedrock's InvokeModel wire protocol, as the SDK's own
`AsyncAnthropicBedrock` uses it: SigV4-signed requests to `/model/{id}/invoke`
and `/invoke-with-response-stream`, AWS event-stream frames with base64 chunks,
and Bedrock's errors (before the stream and as exception frames in it)."""

from __future__ import annotations

import base64
import json
import re

import anthropic
import httpx2
import pytest
from botocore.eventstream import EventStreamBuffer

from claude.eventstream import chunk_frame, exception_frame, frame
from claude.fake import StreamingASGITransport
from tests.claude_providers.conftest import AWS_KEY, user

SONNET_45 = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_55 = "global.anthropic.claude-sonnet-5-5-v1:0"


async def test_invoke_answers_a_message_the_sdk_reads(bedrock, recorder):
    client = bedrock()
    message = await client.messages.create(
        model=SONNET_45, max_tokens=200, messages=user("[[fake echo=1]] Hello, Bedrock")
    )

    assert message.content[0].text == "Hello, Bedrock"
    assert message.id.startswith("msg_bdrk_01")
    assert message.model == "claude-sonnet-4-5-20250929"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    seen = recorder.last
    # The SDK moves model and stream into the path, and puts its API version in the body.
    assert seen.path == f"/model/{SONNET_45}/invoke"
    body = seen.json
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == "2026-10-21"
    # A SigV4 signature for the bedrock service in the client's region.
    assert re.match(
        rf"AWS4-HMAC-SHA256 Credential={AWS_KEY}/\d{{8}}/us-west-2/bedrock/aws4_request, "
        r"SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$",
        seen.headers["authorization"],
    )
    assert re.match(r"\d{8}T\d{6}Z$", seen.headers["x-amz-date"])


async def test_the_stream_is_event_stream_frames_the_sdk_decodes(bedrock, recorder):
    client = bedrock()
    async with client.messages.stream(
        model=SONNET_55,
        max_tokens=500,
        messages=user("Tell me about frames [[fake tokens=25]]"),
        thinking={"type": "adaptive"},
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()

    assert recorder.last.path == f"/model/{SONNET_55}/invoke-with-response-stream"
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].signature.startswith("Eq")
    assert final.content[1].text == text and len(text) > 40
    assert final.usage.output_tokens == 25 + 40
    assert stream.response.headers["content-type"] == "application/vnd.amazon.eventstream"


async def test_each_frame_carries_one_base64_event_and_the_metrics_at_the_end(bedrock):
    """The raw body, read as AWS does (botocore checks both CRCs of every frame)."""
    client = bedrock()
    async with client.messages.with_streaming_response.create(
        model=SONNET_55, max_tokens=100, messages=user("[[fake tokens=5]] hi"), stream=True
    ) as response:
        body = b"".join([chunk async for chunk in response.iter_bytes()])
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    events = []
    for message in buffer:
        assert message.headers[":message-type"] == "event"
        assert message.headers[":event-type"] == "chunk"
        payload = json.loads(message.payload)
        events.append(json.loads(base64.b64decode(payload["bytes"])))
    types = [event["type"] for event in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == 5 and metrics["inputTokenCount"] > 0


def test_the_frame_writer_round_trips_through_botocore():
    buffer = EventStreamBuffer()
    buffer.add_data(chunk_frame({"type": "ping"}, "abc") + exception_frame("throttlingException", "slow"))
    first, second = list(buffer)
    assert json.loads(base64.b64decode(json.loads(first.payload)["bytes"])) == {"type": "ping"}
    assert second.headers[":exception-type"] == "throttlingException"
    assert json.loads(second.payload) == {"message": "slow"}
    # A frame whose bytes were changed fails its checksum.
    broken = bytearray(frame({"a": "b"}, b"payload"))
    broken[-6] ^= 1
    damaged = EventStreamBuffer()
    damaged.add_data(bytes(broken))
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        list(damaged)


@pytest.mark.parametrize(
    ("directive", "status", "error_class", "amzn_type"),
    [
        ("rate_limit_error", 429, anthropic.RateLimitError, "ThrottlingException"),
        ("overloaded_error", 503, anthropic.InternalServerError, "ServiceUnavailableException"),
        ("authentication_error", 403, anthropic.PermissionDeniedError, "UnrecognizedClientException"),
        ("api_error", 500, anthropic.InternalServerError, "InternalServerException"),
        ("timeout_error", 408, anthropic.APIStatusError, "ModelTimeoutException"),
    ],
)
async def test_errors_before_the_stream_are_bedrocks_own(
    bedrock, directive, status, error_class, amzn_type
):
    client = bedrock()
    with pytest.raises(error_class) as caught:
        await client.messages.create(
            model=SONNET_45, max_tokens=50, messages=user(f"[[fake error={directive}]] hi")
        )
    error = caught.value
    assert error.status_code == status
    assert error.response.headers["x-amzn-errortype"].startswith(f"{amzn_type}:")
    assert set(error.body) == {"message"} and error.body["message"]


async def test_an_error_mid_stream_is_an_exception_frame(bedrock):
    client = bedrock()
    received = ""
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(
            model=SONNET_45,
            max_tokens=200,
            messages=user("[[fake error=overloaded_error error_at=4]] a story"),
        ) as stream:
            async for piece in stream.text_stream:
                received += piece
    assert received  # the text before the frame arrived
    error = caught.value
    assert error.status_code == 200
    assert error.body["error"]["type"] == "serviceUnavailableException"
    assert error.body["error"]["message"] == "Bedrock is unable to process your request."


async def test_a_bedrock_api_key_goes_as_a_bearer_token(bedrock, recorder):
    client = bedrock(api_key="bedrock-api-key-fake")
    message = await client.messages.create(
        model=SONNET_45, max_tokens=50, messages=user("[[fake tokens=3]] hi")
    )
    assert message.usage.output_tokens == 3
    assert recorder.last.headers["authorization"] == "Bearer bedrock-api-key-fake"


async def test_unsigned_or_malformed_requests_are_refused(recorder):
    async with httpx2.AsyncClient(
        transport=StreamingASGITransport(app=recorder), base_url="http://bedrock.fake.invalid"
    ) as http:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5,
                "messages": user("hi")}
        missing = await http.post(f"/model/{SONNET_45}/invoke", json=body)
        forged = await http.post(
            f"/model/{SONNET_45}/invoke",
            json=body,
            headers={"authorization": "AWS4-HMAC-SHA256 Credential=nope"},
        )
    assert missing.status_code == 403
    assert missing.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException")
    assert missing.json() == {"message": "Missing Authentication Token"}
    assert forged.status_code == 403
    assert forged.headers["x-amzn-errortype"].startswith("IncompleteSignatureException")


@pytest.mark.parametrize(
    "model",
    [
        "jp.anthropic.claude-opus-4-5-20251101-v1:0",  # Opus 4.5 has no Japan profile
        "global.anthropic.claude-opus-4-1-20250805-v1:0",  # Opus 4.1 is US only
        "anthropic.claude-sonnet-4-5-20250929-v1:0",  # no profile
        "claude-sonnet-4-5",  # the Anthropic API's id
    ],
)
async def test_a_model_id_the_profile_does_not_serve_is_invalid(bedrock, model):
    client = bedrock()
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model=model, max_tokens=5, messages=user("hi"))
    assert caught.value.body == {"message": "The provided model identifier is invalid."}


async def test_url_and_file_sources_are_refused_base64_is_read(bedrock):
    client = bedrock()
    for source in (
        {"type": "url", "url": "https://example.com/cat.png"},
        {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"},
    ):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model=SONNET_45,
                max_tokens=50,
                messages=[{"role": "user", "content": [
                    {"type": "image", "source": source}, {"type": "text", "text": "what?"}]}],
            )
        assert "send the data as base64" in caught.value.body["message"]


async def test_the_sdk_refuses_batches_and_token_counting_on_bedrock(bedrock, recorder):
    """Before any request: the product asks `batches_available()` /
    `token_counting_available()` instead of calling these."""
    client = bedrock()
    with pytest.raises(anthropic.AnthropicError, match="Batch API is not supported in Bedrock"):
        await client.messages.batches.create(requests=[])
    with pytest.raises(anthropic.AnthropicError, match="Token counting is not supported"):
        await client.messages.count_tokens(model=SONNET_45, messages=user("hi"))
    assert recorder.seen == []
