"""The models the product offers, with the facts the app and the fake need.

Prices live in `pricing.py`; this is what a model can do. The current models
come first in the picker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ThinkingMode = Literal["adaptive", "enabled", "none"]


@dataclass(frozen=True)
class ModelInfo:
    id: str
    label: str
    current: bool
    thinking: ThinkingMode
    context_window: int
    max_output_tokens: int
    # Prompts shorter than this are never cached (no error, both counters 0).
    cache_min_tokens: int
    aliases: tuple[str, ...] = ()
    # Server-side compaction of older turns (beta `compact-2026-01-12`). The
    # seeds name Opus 4.6 as its first model; later Opus and Sonnet models take
    # it too; the Haiku models and everything before 4.6 do not (the chat then
    # summarises older turns itself: conversations/context.py).
    compaction: bool = False


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "claude-opus-5-5",
        "Claude Opus 5.5",
        True,
        "adaptive",
        1_000_000,
        128_000,
        512,
        compaction=True,
    ),
    ModelInfo(
        "claude-sonnet-5-5",
        "Claude Sonnet 5.5",
        True,
        "adaptive",
        1_000_000,
        128_000,
        1024,
        compaction=True,
    ),
    ModelInfo("claude-haiku-5-5", "Claude Haiku 5.5", True, "adaptive", 200_000, 64_000, 2048),
    ModelInfo(
        "claude-fable-5-1",
        "Claude Fable 5.1",
        False,
        "adaptive",
        1_000_000,
        128_000,
        512,
        compaction=True,
    ),
    ModelInfo(
        "claude-mythos-5-1",
        "Claude Mythos 5.1",
        False,
        "adaptive",
        1_000_000,
        128_000,
        512,
        compaction=True,
    ),
    ModelInfo(
        "claude-fable-5",
        "Claude Fable 5",
        False,
        "adaptive",
        1_000_000,
        128_000,
        512,
        compaction=True,
    ),
    ModelInfo(
        "claude-mythos-5",
        "Claude Mythos 5",
        False,
        "adaptive",
        1_000_000,
        128_000,
        512,
        compaction=True,
    ),
    ModelInfo(
        "claude-opus-5",
        "Claude Opus 5",
        False,
        "adaptive",
        1_000_000,
        128_000,
        512,
        compaction=True,
    ),
    ModelInfo(
        "claude-sonnet-5",
        "Claude Sonnet 5",
        False,
        "adaptive",
        1_000_000,
        128_000,
        1024,
        compaction=True,
    ),
    ModelInfo(
        "claude-opus-4-8",
        "Claude Opus 4.8",
        False,
        "adaptive",
        1_000_000,
        128_000,
        1024,
        compaction=True,
    ),
    ModelInfo(
        "claude-opus-4-7",
        "Claude Opus 4.7",
        False,
        "adaptive",
        1_000_000,
        128_000,
        2048,
        compaction=True,
    ),
    ModelInfo(
        "claude-opus-4-6",
        "Claude Opus 4.6",
        False,
        "adaptive",
        1_000_000,
        128_000,
        4096,
        compaction=True,
    ),
    ModelInfo(
        "claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        False,
        "adaptive",
        1_000_000,
        128_000,
        1024,
        compaction=True,
    ),
    ModelInfo(
        "claude-opus-4-5",
        "Claude Opus 4.5",
        False,
        "enabled",
        200_000,
        64_000,
        4096,
        aliases=("claude-opus-4-5-20251101",),
    ),
    ModelInfo(
        "claude-sonnet-4-5",
        "Claude Sonnet 4.5",
        False,
        "enabled",
        200_000,
        64_000,
        1024,
        aliases=("claude-sonnet-4-5-20250929",),
    ),
    ModelInfo(
        "claude-haiku-4-5",
        "Claude Haiku 4.5",
        False,
        "enabled",
        200_000,
        64_000,
        4096,
        aliases=("claude-haiku-4-5-20251001",),
    ),
    ModelInfo(
        "claude-sonnet-4",
        "Claude Sonnet 4",
        False,
        "enabled",
        200_000,
        64_000,
        1024,
        aliases=("claude-sonnet-4-20250514", "claude-sonnet-4-0"),
    ),
    ModelInfo(
        "claude-opus-4-1",
        "Claude Opus 4.1",
        False,
        "enabled",
        200_000,
        32_000,
        1024,
        aliases=("claude-opus-4-1-20250805",),
    ),
    ModelInfo(
        "claude-opus-4",
        "Claude Opus 4",
        False,
        "enabled",
        200_000,
        32_000,
        1024,
        aliases=("claude-opus-4-0", "claude-opus-4-20250514"),
    ),
    ModelInfo(
        "claude-3-5-haiku",
        "Claude Haiku 3.5",
        False,
        "none",
        200_000,
        8_192,
        2048,
        aliases=("claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
    ),
    ModelInfo(
        "claude-3-haiku",
        "Claude Haiku 3",
        False,
        "none",
        200_000,
        4_096,
        2048,
        aliases=("claude-3-haiku-20240307",),
    ),
)

_BY_ID: dict[str, ModelInfo] = {}
for _model in MODELS:
    _BY_ID[_model.id] = _model
    for _alias in _model.aliases:
        _BY_ID[_alias] = _model


def model_info(model_id: str) -> ModelInfo | None:
    """The catalog entry for a model id or one of its dated aliases, or None."""
    return _BY_ID.get(model_id)


def model_choices() -> list[tuple[str, str]]:
    """(id, label) pairs for the picker: current models first, then the rest."""
    ordered = sorted(MODELS, key=lambda m: (not m.current, MODELS.index(m)))
    return [(m.id, m.label) for m in ordered]


# --- The same models on Amazon Bedrock and Google Vertex AI ------------------------

# Bedrock's inference profiles: `global.` routes anywhere; the others keep the
# data in one geography (regional endpoints: +10% on models from Sonnet 4.5 on).
BEDROCK_PROFILES = ("global", "us", "eu", "jp", "apac")


@dataclass(frozen=True)
class CloudIds:
    """A model's ids on the clouds and where each offers it.

    `bedrock` is the base model id (without a profile prefix); `bedrock_profiles`
    the profiles it is served through. `vertex` is Vertex AI's `claude-…@date` id;
    `vertex_global` whether Vertex's global endpoint serves it (every regional
    location is assumed to). `regional_premium`: a regional endpoint costs 10%
    more (the Bedrock guide: "Claude Sonnet 4.5 and future models"; older models
    keep their pricing). `published`: from the Bedrock guide's table, not the
    naming pattern.
    """

    bedrock: str
    bedrock_profiles: tuple[str, ...]
    vertex: str
    vertex_global: bool
    regional_premium: bool
    published: bool = False


def _published(
    bedrock: str, profiles: tuple[str, ...], vertex: str, *, premium: bool
) -> CloudIds:
    return CloudIds(bedrock, profiles, vertex, "global" in profiles, premium, published=True)


# The seed's table (the Bedrock guide, "ID model API"), with Vertex's ids of the same
# dated models. Vertex's global endpoint is taken to serve the models Bedrock's
# does; models not in the table follow the naming pattern (below).
_PUBLISHED_CLOUD_IDS: dict[str, CloudIds] = {
    "claude-sonnet-4-5": _published(
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        ("global", "us", "eu", "jp"),
        "claude-sonnet-4-5@20250929",
        premium=True,
    ),
    "claude-sonnet-4": _published(
        "anthropic.claude-sonnet-4-20250514-v1:0",
        ("global", "us", "eu", "apac"),
        "claude-sonnet-4@20250514",
        premium=False,
    ),
    "claude-opus-4-5": _published(
        "anthropic.claude-opus-4-5-20251101-v1:0",
        ("global", "us", "eu"),
        "claude-opus-4-5@20251101",
        premium=True,
    ),
    "claude-opus-4-1": _published(
        "anthropic.claude-opus-4-1-20250805-v1:0", ("us",), "claude-opus-4-1@20250805", premium=False
    ),
    "claude-opus-4": _published(
        "anthropic.claude-opus-4-20250514-v1:0", ("us",), "claude-opus-4@20250514", premium=False
    ),
    "claude-haiku-4-5": _published(
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        ("global", "us", "eu"),
        "claude-haiku-4-5@20251001",
        premium=True,
    ),
    "claude-3-5-haiku": _published(
        "anthropic.claude-3-5-haiku-20241022-v1:0", ("us",), "claude-3-5-haiku@20241022", premium=False
    ),
    "claude-3-haiku": _published(
        "anthropic.claude-3-haiku-20240307-v1:0",
        ("us", "eu", "apac"),
        "claude-3-haiku@20240307",
        premium=False,
    ),
}


def _pattern_ids(info: ModelInfo) -> CloudIds:
    """A model newer than the guide's table: `anthropic.<id>-v1:0` on Bedrock, its own
    id on Vertex (newer Vertex ids carry no date), every profile, the premium."""
    return CloudIds(f"anthropic.{info.id}-v1:0", BEDROCK_PROFILES, info.id, True, True)


CLOUD_IDS: dict[str, CloudIds] = {
    m.id: _PUBLISHED_CLOUD_IDS.get(m.id) or _pattern_ids(m) for m in MODELS
}

_BY_CLOUD_ID: dict[str, ModelInfo] = {}
for _model in MODELS:
    _BY_CLOUD_ID[CLOUD_IDS[_model.id].bedrock] = _model
    _BY_CLOUD_ID[CLOUD_IDS[_model.id].vertex] = _model


def cloud_ids(model_id: str) -> CloudIds | None:
    """The Bedrock and Vertex ids of a catalog model (or one of its aliases)."""
    info = model_info(model_id)
    return CLOUD_IDS[info.id] if info else None


def bedrock_model_id(model_id: str, profile: str) -> str | None:
    """`<profile>.anthropic.claude-…-v1:0`, or None where the profile does not serve it."""
    ids = cloud_ids(model_id)
    if ids is None or profile not in ids.bedrock_profiles:
        return None
    return f"{profile}.{ids.bedrock}"


def vertex_model_id(model_id: str, *, global_endpoint: bool) -> str | None:
    """Vertex AI's id, or None where the endpoint does not serve it."""
    ids = cloud_ids(model_id)
    if ids is None or (global_endpoint and not ids.vertex_global):
        return None
    return ids.vertex


def model_for_cloud_id(cloud_id: str) -> ModelInfo | None:
    """The catalog model behind a Bedrock id (with or without its profile prefix) or a
    Vertex id; None for anything else."""
    found = _BY_CLOUD_ID.get(cloud_id)
    if found is not None:
        return found
    profile, _, rest = cloud_id.partition(".")
    if profile in BEDROCK_PROFILES:
        return _BY_CLOUD_ID.get(rest)
    return None
