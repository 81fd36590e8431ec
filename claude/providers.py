"""Where this deployment's calls go: the provider, its region and endpoint, the
model ids it takes, the models it offers and what each call is priced with.

Anthropic's API (and the offline fake) take the catalog's ids and have one,
global, endpoint. Amazon Bedrock takes `<profile>.anthropic.claude-…-v1:0`,
where the profile is `global` or a geography (`us`, `eu`, `jp`, `apac`: a
regional endpoint, `CLAUDE_BEDROCK_ENDPOINT`); Google Vertex AI takes
`claude-…@date` at a location (`CLOUD_ML_REGION`: `global`, or a region, which
is a regional endpoint). A model the provider does not serve at this endpoint is
not offered. A regional endpoint costs 10% more for the models from Sonnet 4.5 on
(`claude.catalog.CloudIds.regional_premium`).

Settings are read on every call (tests change them), never at import.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy

from claude.catalog import (
    MODELS,
    bedrock_model_id,
    cloud_ids,
    model_info,
    vertex_model_id,
)

PROVIDER_LABELS = {
    "anthropic": "Anthropic API",
    "fake": gettext_lazy("the offline fake"),
    "bedrock": "Amazon Bedrock",
    "vertex": "Google Vertex AI",
}


@dataclass(frozen=True)
class Endpoint:
    """The deployment's endpoint, as the ledger stores it with each call."""

    provider: str  # anthropic | bedrock | vertex | fake
    region: str  # the AWS region or Vertex location; "" on the Anthropic API
    kind: str  # "global" or "regional"
    # Bedrock: the inference profile (global, us, eu, jp, apac); else "".
    profile: str = ""

    @property
    def regional(self) -> bool:
        return self.kind == "regional"

    @property
    def label(self) -> str:
        where = f" {self.profile}" if self.profile and self.profile != "global" else ""
        region = f", {self.region}" if self.region else ""
        return f"{PROVIDER_LABELS.get(self.provider, self.provider)} ({self.kind}{where}{region})"


def endpoint() -> Endpoint:
    """This deployment's endpoint, from the settings."""
    provider = settings.CLAUDE_PROVIDER
    if provider == "bedrock":
        profile = settings.CLAUDE_BEDROCK_ENDPOINT or "global"
        kind = "global" if profile == "global" else "regional"
        return Endpoint("bedrock", settings.CLAUDE_AWS_REGION, kind, profile)
    if provider == "vertex":
        region = settings.CLAUDE_VERTEX_REGION
        return Endpoint("vertex", region, "global" if region == "global" else "regional")
    return Endpoint(provider, "", "global")


def provider_model_id(model: str) -> str:
    """The id this deployment's provider takes for a catalog model.

    A model the provider does not serve here keeps its own id (the provider
    then refuses it, and the person reads why), as does any unknown id."""
    where = endpoint()
    if where.provider == "bedrock":
        return bedrock_model_id(model, where.profile) or model
    if where.provider == "vertex":
        return vertex_model_id(model, global_endpoint=not where.regional) or model
    return model


def model_offered(model: str) -> bool:
    """Whether this deployment's provider serves `model` at its endpoint."""
    if model_info(model) is None:
        return False
    where = endpoint()
    if where.provider == "bedrock":
        return bedrock_model_id(model, where.profile) is not None
    if where.provider == "vertex":
        return vertex_model_id(model, global_endpoint=not where.regional) is not None
    return True


def model_choices() -> list[tuple[str, str]]:
    """(id, label) pairs for the picker: the models offered here, current ones first."""
    ordered = sorted(MODELS, key=lambda m: (not m.current, MODELS.index(m)))
    return [(m.id, m.label) for m in ordered if model_offered(m.id)]


def default_model() -> str:
    """`CLAUDE_DEFAULT_MODEL` when it is offered here, else the first model offered."""
    configured = settings.CLAUDE_DEFAULT_MODEL
    if model_offered(configured):
        return configured
    choices = model_choices()
    return choices[0][0] if choices else configured


def regional_premium(model: str) -> bool:
    """Whether a call to `model` here is billed with the regional endpoint's +10%."""
    if not endpoint().regional:
        return False
    ids = cloud_ids(model)
    # An unknown model: the dearer way, as pricing's fallback is.
    return ids.regional_premium if ids else True
