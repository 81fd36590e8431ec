"""The fake's Amazon Bedrock and Google Vertex AI routes: the same replies as the
Messages API, in each provider's paths, framing, authentication and errors, as
the SDK's `AsyncAnthropicBedrock` / `AsyncAnthropicVertex` build and read them
(`anthropic/lib/bedrock`, `anthropic/lib/vertex`).

Bedrock (under `ANTHROPIC_BEDROCK_BASE_URL`):
- `POST /model/{modelId}/invoke` (a Message) and
  `/model/{modelId}/invoke-with-response-stream` (AWS event-stream frames, each
  a `chunk` whose `bytes` are one stream event, base64); the model id is a
  profile id, `global.anthropic.claude-…-v1:0` or `us.` / `eu.` / `jp.` / `apac.`.
- The body has no `model` or `stream` (the SDK moves them into the path) and an
  `anthropic_version`; `anthropic_beta` is allowed.
- A SigV4 `Authorization` header (its shape: the signature cannot be checked
  without the secret) with `X-Amz-Date`, or a Bedrock API key as a bearer token.
- Errors: the status, `x-amzn-ErrorType: ThrottlingException:…` and a
  `{"message"}` body; mid-stream, an exception frame (`throttlingException`, ...).

Vertex AI (under `ANTHROPIC_VERTEX_BASE_URL`, `/v1` optional):
- `POST /projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`
  and `:streamRawPredict` (SSE, as the API), `count-tokens:rawPredict`.
- `anthropic_version` in the body, `stream` kept there, a bearer token.
- Google's errors for what Google answers itself (401 UNAUTHENTICATED, 403,
  404 for a model the location does not serve, 429 RESOURCE_EXHAUSTED for a
  quota), the API's error body for the model's own (overloaded, 500, 400s).

Neither takes `url` or `file` sources (no Files API there): 400.
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claude.catalog import (
    BEDROCK_PROFILES,
    CloudIds,
    ModelInfo,
    cloud_ids,
    model_for_cloud_id,
)
from claude.eventstream import chunk_frame, exception_frame

_Headers = list[tuple[bytes, bytes]]

# The API versions each takes in the body (the SDK sends its own, 2026-10-21);
# the providers' dated ones behave as 2023-06-01.
BEDROCK_VERSIONS = {"bedrock-2023-05-31": "2023-06-01", "2023-06-01": "2023-06-01",
                    "2026-10-21": "2026-10-21"}
VERTEX_VERSIONS = {"vertex-2023-10-16": "2023-06-01", "2023-06-01": "2023-06-01",
                   "2026-10-21": "2026-10-21"}

_BEDROCK_PATH = re.compile(r"^/model/([^/]+)/(invoke|invoke-with-response-stream)$")
_VERTEX_PATH = re.compile(
    r"^(?:/v1)?/projects/([^/]+)/locations/([^/]+)/publishers/anthropic/models/([^/:]+)"
    r":(rawPredict|streamRawPredict)$"
)
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[A-Z0-9]{4,128}/(\d{8})/([a-z0-9-]+)/bedrock/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$"
)
_AMZ_DATE = re.compile(r"^(\d{8})T\d{6}Z$")
_LETTERS = string.ascii_letters + string.digits


class CloudError(Exception):
    """An error already in the provider's own shape: sent as it is."""

    def __init__(self, status: int, body: dict[str, Any], headers: _Headers | None = None):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or []


def is_cloud_path(path: str) -> bool:
    return path.startswith("/model/") or "/publishers/anthropic/models/" in path


def _sse_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass(frozen=True)
class Dialect:
    """How one provider frames what the fake answers."""

    name: str
    message_prefix: str
    stream_content_type: bytes
    event: Callable[[str, dict[str, Any]], bytes]
    ping: bytes

    def response_headers(self, request_id: str) -> _Headers:
        return []

    def stream_headers(self) -> _Headers:
        return [(b"cache-control", b"no-cache")]

    def invoke_headers(self, *, input_tokens: int, output_tokens: int, latency_ms: int) -> _Headers:
        return []

    def stop_metrics(self, *, input_tokens: int, output_tokens: int, latency_ms: int) -> dict:
        return {}

    def stream_error(self, error_type: str, message: str) -> bytes:
        error = {"type": error_type, "message": message}
        return self.event("error", {"type": "error", "error": error})

    def check_sources(self, messages: list[dict[str, Any]]) -> None:
        return None

    def check_auth(self, headers: dict[bytes, bytes]) -> None:
        return None

    def malformed(self, detail: str) -> Exception:
        return CloudError(400, _api_error("invalid_request_error", detail))

    def error_response(self, error: Any, request_id: str) -> tuple[int, _Headers, dict[str, Any]]:
        """An ApiError of the shared core, as this provider answers it."""
        detail: dict[str, Any] = {"type": error.error_type, "message": error.message}
        if getattr(error, "error_code", ""):
            detail["details"] = {"error_code": error.error_code}
        body = {"type": "error", "error": detail, "request_id": request_id}
        return error.status, list(error.headers), body


def _api_error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


ANTHROPIC = Dialect(
    "anthropic",
    "msg_01",
    b"text/event-stream; charset=utf-8",
    _sse_event,
    b'event: ping\ndata: {"type": "ping"}\n\n',
)


def _no_cloud_sources(messages: list[dict[str, Any]], provider: str) -> str | None:
    """The first image or document block with a `url` or `file` source, as the
    error names it (neither provider has the Files API or fetches URLs)."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") not in ("image", "document"):
                continue
            source = block.get("source")
            kind = source.get("type") if isinstance(source, dict) else None
            if kind in ("url", "file"):
                return (
                    f"messages.{i}.content.{j}.{block['type']}.source: {kind} sources are not "
                    f"supported on {provider}; send the data as base64"
                )
    return None


# --- Bedrock -------------------------------------------------------------------------

# Our error types as Bedrock's: (exception, status, message, stream exception member).
_BEDROCK_ERRORS: dict[str, tuple[str, int, str, str]] = {
    "invalid_request_error": ("ValidationException", 400, "", "validationException"),
    "authentication_error": (
        "UnrecognizedClientException",
        403,
        "The security token included in the request is invalid.",
        "modelStreamErrorException",
    ),
    "billing_error": (
        "AccessDeniedException",
        403,
        "You don't have access to the model with the specified model ID.",
        "modelStreamErrorException",
    ),
    "permission_error": (
        "AccessDeniedException",
        403,
        "You don't have access to the model with the specified model ID.",
        "modelStreamErrorException",
    ),
    "not_found_error": (
        "ResourceNotFoundException",
        404,
        "Could not resolve the foundation model from the provided model identifier.",
        "modelStreamErrorException",
    ),
    "request_too_large": (
        "ValidationException",
        400,
        "Input is too long for requested model.",
        "validationException",
    ),
    "rate_limit_error": (
        "ThrottlingException",
        429,
        "Too many requests, please wait before trying again.",
        "throttlingException",
    ),
    "api_error": (
        "InternalServerException",
        500,
        "The system encountered an unexpected error during processing. Try your request again.",
        "internalServerException",
    ),
    "timeout_error": (
        "ModelTimeoutException",
        408,
        "Model has timed out in processing the request. Try your request again.",
        "modelTimeoutException",
    ),
    "overloaded_error": (
        "ServiceUnavailableException",
        503,
        "Bedrock is unable to process your request.",
        "serviceUnavailableException",
    ),
}


def _aws_error(exception: str, status: int, message: str, headers: _Headers = ()) -> CloudError:
    error_type = f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode()
    return CloudError(status, {"message": message}, [(b"x-amzn-errortype", error_type), *headers])


@dataclass(frozen=True)
class _Bedrock(Dialect):
    def response_headers(self, request_id: str) -> _Headers:
        return [(b"x-amzn-requestid", request_id.encode())]

    def stream_headers(self) -> _Headers:
        return [(b"x-amzn-bedrock-content-type", b"application/json")]

    def invoke_headers(self, *, input_tokens: int, output_tokens: int, latency_ms: int) -> _Headers:
        return [
            (b"x-amzn-bedrock-invocation-latency", str(latency_ms).encode()),
            (b"x-amzn-bedrock-input-token-count", str(input_tokens).encode()),
            (b"x-amzn-bedrock-output-token-count", str(output_tokens).encode()),
        ]

    def stop_metrics(self, *, input_tokens: int, output_tokens: int, latency_ms: int) -> dict:
        return {
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": input_tokens,
                "outputTokenCount": output_tokens,
                "invocationLatency": latency_ms,
                "firstByteLatency": min(latency_ms, 1),
            }
        }

    def stream_error(self, error_type: str, message: str) -> bytes:
        _, _, bedrock_message, member = _BEDROCK_ERRORS[error_type]
        return exception_frame(member, bedrock_message or message)

    def check_sources(self, messages: list[dict[str, Any]]) -> None:
        problem = _no_cloud_sources(messages, "Amazon Bedrock")
        if problem:
            raise _aws_error("ValidationException", 400, problem)

    def check_auth(self, headers: dict[bytes, bytes]) -> None:
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if not authorization:
            raise _aws_error("MissingAuthenticationTokenException", 403,
                             "Missing Authentication Token")
        if authorization.lower().startswith("bearer "):
            if not authorization[7:].strip():
                raise _aws_error("UnrecognizedClientException", 403, "Invalid API Key format")
            return
        signed = _SIGV4.match(authorization)
        amz_date = _AMZ_DATE.match(headers.get(b"x-amz-date", b"").decode("latin-1"))
        if signed is None or amz_date is None:
            raise _aws_error(
                "IncompleteSignatureException",
                403,
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                "(AWS4-HMAC-SHA256) and an X-Amz-Date header.",
            )
        signed_headers = signed.group(3).split(";")
        if signed.group(1) != amz_date.group(1) or not {"host", "x-amz-date"} <= set(
            signed_headers
        ):
            raise _aws_error(
                "InvalidSignatureException",
                403,
                "The request signature we calculated does not match the signature you provided.",
            )

    def malformed(self, detail: str) -> Exception:
        return _aws_error("ValidationException", 400, f"Malformed input request: {detail}")

    def error_response(self, error: Any, request_id: str) -> tuple[int, _Headers, dict[str, Any]]:
        exception, status, message, _ = _BEDROCK_ERRORS.get(
            error.error_type, _BEDROCK_ERRORS["api_error"]
        )
        aws = _aws_error(exception, status, message or error.message, list(error.headers))
        return aws.status, aws.headers, aws.body


def _bedrock_event(name: str, data: dict[str, Any]) -> bytes:
    # Bedrock pads each chunk with letters, so the size does not tell the text.
    return chunk_frame(data, "".join(random.choices(_LETTERS, k=random.randint(1, 24))))


BEDROCK = _Bedrock(
    "bedrock", "msg_bdrk_01", b"application/vnd.amazon.eventstream", _bedrock_event, b""
)


# --- Vertex AI -----------------------------------------------------------------------

_GOOGLE_ERRORS = {
    "authentication_error": (
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    ),
    "permission_error": (
        403,
        "PERMISSION_DENIED",
        "Permission 'aiplatform.endpoints.predict' denied on resource (or it may not exist).",
    ),
    "rate_limit_error": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
        "with base model: anthropic-claude. Please submit a quota increase request.",
    ),
}


def _google_error(status: int, code: str, message: str, headers: _Headers = ()) -> CloudError:
    return CloudError(
        status, {"error": {"code": status, "message": message, "status": code}}, list(headers)
    )


@dataclass(frozen=True)
class _Vertex(Dialect):
    def check_sources(self, messages: list[dict[str, Any]]) -> None:
        problem = _no_cloud_sources(messages, "Vertex AI")
        if problem:
            raise CloudError(400, _api_error("invalid_request_error", problem))

    def check_auth(self, headers: dict[bytes, bytes]) -> None:
        authorization = headers.get(b"authorization", b"")
        token = authorization[7:].strip() if authorization[:7].lower() == b"bearer " else b""
        if not token:
            raise _google_error(401, *_GOOGLE_ERRORS["authentication_error"][1:])

    def error_response(self, error: Any, request_id: str) -> tuple[int, _Headers, dict[str, Any]]:
        google = _GOOGLE_ERRORS.get(error.error_type)
        if google is not None:
            failed = _google_error(*google, headers=list(error.headers))
            return failed.status, failed.headers, failed.body
        detail = {"type": error.error_type, "message": error.message}
        return error.status, list(error.headers), {"type": "error", "error": detail}


VERTEX = _Vertex(
    "vertex",
    "msg_vrtx_01",
    b"text/event-stream; charset=utf-8",
    _sse_event,
    b'event: ping\ndata: {"type": "ping"}\n\n',
)


# --- Routes ----------------------------------------------------------------------------


def _response_model(info: ModelInfo) -> str:
    """The model a provider's reply names: the dated Anthropic id where there is one."""
    dated = [alias for alias in info.aliases if re.search(r"\d{8}$", alias)]
    return dated[0] if dated else info.id


@dataclass
class CloudRoute:
    """One request on a provider's route, before its body is read."""

    dialect: Dialect
    model_id: str  # as in the path
    stream: bool
    count_tokens: bool = False
    location: str = ""
    project: str = ""
    info: ModelInfo | None = field(default=None)

    def check_model(self) -> None:
        """The model id must be one this provider serves at this profile/location."""
        if self.count_tokens:
            return
        if self.dialect is BEDROCK:
            self.info = _bedrock_model(self.model_id)
            if self.info is None:
                raise _aws_error(
                    "ValidationException", 400, "The provided model identifier is invalid."
                )
            return
        self.info = _vertex_model(self.model_id, global_location=self.location == "global")
        if self.info is None:
            raise _google_error(
                404,
                "NOT_FOUND",
                f"Publisher Model `projects/{self.project}/locations/{self.location}/publishers/"
                f"anthropic/models/{self.model_id}` not found.",
            )

    def prepare(self, payload: Any) -> tuple[dict[str, Any], str]:
        """The body as the shared core reads it (the catalog's model in it), and the
        API version it asked for."""
        if not isinstance(payload, dict):
            raise self.dialect.malformed("#: expected type: JSONObject")
        versions = BEDROCK_VERSIONS if self.dialect is BEDROCK else VERTEX_VERSIONS
        asked = payload.get("anthropic_version")
        if asked is None:
            raise self.dialect.malformed("#: required key [anthropic_version] not found")
        if asked not in versions:
            raise self.dialect.malformed(f"#/anthropic_version: unknown version {asked!r}")
        body = {k: v for k, v in payload.items() if k not in ("anthropic_version", "anthropic_beta")}
        if self.dialect is BEDROCK:
            for key in ("model", "stream"):
                if key in body:
                    raise self.dialect.malformed(f"#: extraneous key [{key}] is not permitted")
            body["stream"] = self.stream
        elif self.count_tokens:
            info = _vertex_model(str(body.get("model", "")), global_location=self.location == "global")
            if info is None:
                raise CloudError(
                    404, _api_error("not_found_error", f"model: {body.get('model')}")
                )
            self.info = info
        else:
            if "model" in body:
                raise CloudError(
                    400, _api_error("invalid_request_error", "model: Extra inputs are not permitted")
                )
            if bool(body.get("stream", False)) != self.stream:
                raise CloudError(
                    400,
                    _api_error(
                        "invalid_request_error",
                        "stream: must be true on streamRawPredict and false on rawPredict",
                    ),
                )
        assert self.info is not None
        body["model"] = _response_model(self.info)
        return body, versions[asked]


def _bedrock_model(model_id: str) -> ModelInfo | None:
    profile, _, base = model_id.partition(".")
    if profile not in BEDROCK_PROFILES:
        return None
    info = model_for_cloud_id(base)
    ids: CloudIds | None = cloud_ids(info.id) if info else None
    if info is None or ids is None or ids.bedrock != base or profile not in ids.bedrock_profiles:
        return None
    return info


def _vertex_model(model_id: str, *, global_location: bool) -> ModelInfo | None:
    info = model_for_cloud_id(model_id)
    ids = cloud_ids(info.id) if info else None
    if info is None or ids is None or ids.vertex != model_id:
        return None
    if global_location and not ids.vertex_global:
        return None
    return info


def cloud_route(method: str, path: str) -> CloudRoute:
    """The route of a provider path; a CloudError when it is none the provider has."""
    bedrock = _BEDROCK_PATH.match(path)
    if path.startswith("/model/"):
        if bedrock is None or method != "POST":
            raise_route = _aws_error("UnknownOperationException", 404, "Unknown operation")
            return _FailedRoute(BEDROCK, raise_route)
        return CloudRoute(BEDROCK, bedrock.group(1), bedrock.group(2) != "invoke")
    vertex = _VERTEX_PATH.match(path)
    if vertex is None or method != "POST":
        return _FailedRoute(
            VERTEX, _google_error(404, "NOT_FOUND", f"The requested URL {path} was not found.")
        )
    project, location, model, specifier = vertex.groups()
    if model == "count-tokens":
        if specifier != "rawPredict":
            return _FailedRoute(VERTEX, _google_error(404, "NOT_FOUND", "Not found."))
        return CloudRoute(VERTEX, model, False, True, location, project)
    return CloudRoute(VERTEX, model, specifier == "streamRawPredict", False, location, project)


class _FailedRoute(CloudRoute):
    """A path the provider does not serve: every step answers its 404."""

    def __init__(self, dialect: Dialect, error: CloudError) -> None:
        super().__init__(dialect, "", False)
        self._error = error

    def check_model(self) -> None:
        raise self._error


def new_request_id(dialect: Dialect, default: str) -> str:
    """Bedrock's request ids are UUIDs; the others keep the API's `req_…`."""
    return str(uuid.uuid4()) if dialect is BEDROCK else default
