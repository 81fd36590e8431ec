from __future__ import annotations

import json
import uuid

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from claude.providers import model_choices
from conversations.models import Conversation


class ConversationCreateForm(forms.Form):
    # The labels name the fields in the page's list of errors (views._form_errors).
    model = forms.ChoiceField(label=_("Model"), choices=model_choices)
    system_prompt = forms.CharField(
        label=_("System prompt"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=20_000,
    )
    thinking_effort = forms.ChoiceField(
        label=_("Thinking"), choices=Conversation.ThinkingEffort.choices, required=False
    )
    # A preset of the current team: its model, system prompt and thinking win.
    preset = forms.IntegerField(label=_("Preset"), required=False, min_value=1)


class ConversationShareForm(forms.Form):
    team = forms.BooleanField(required=False)
    users = forms.TypedMultipleChoiceField(coerce=int, required=False)
    link = forms.BooleanField(required=False)

    def __init__(self, data, *args, **kwargs) -> None:
        super().__init__(data, *args, **kwargs)
        # Any id is accepted here; the service refuses who is not a teammate.
        values = data.getlist("users") if hasattr(data, "getlist") else []
        self.fields["users"].choices = [(v, v) for v in values]


class ConversationRenameForm(forms.Form):
    title = forms.CharField(max_length=200)


class EstimateForm(forms.Form):
    """A draft: its text and its files. `attachments` is the field repeated, one id
    each, or once as a JSON list of ids; text may be empty when files are attached."""

    text = forms.CharField(required=False, strip=False)

    def __init__(self, data, *args, **kwargs) -> None:
        super().__init__(data, *args, **kwargs)
        self._attachment_values = data.getlist("attachments") if hasattr(data, "getlist") else []

    def clean(self) -> dict:
        cleaned = super().clean()
        values = self._attachment_values
        if len(values) == 1 and values[0].lstrip().startswith("["):
            try:
                values = json.loads(values[0])
            except ValueError:
                raise forms.ValidationError("attachments is not a JSON list of ids.") from None
        if not isinstance(values, list) or len(values) > settings.ATTACHMENT_MAX_PER_MESSAGE:
            raise forms.ValidationError("Too many files, or not a list of ids.")
        try:
            ids = list(dict.fromkeys(uuid.UUID(str(v)) for v in values))
        except ValueError:
            raise forms.ValidationError("attachments lists something that is not an id.") from None
        cleaned["attachments"] = ids
        if not (cleaned.get("text") or "").strip() and not ids:
            raise forms.ValidationError("Nothing to estimate.")
        return cleaned


class ConversationSettingsForm(ConversationCreateForm):
    """The model, system prompt and thinking of a conversation under way."""

    preset = None  # a preset is where a conversation starts, not a setting of it


class ImportForm(forms.Form):
    file = forms.FileField()
