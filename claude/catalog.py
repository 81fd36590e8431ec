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
