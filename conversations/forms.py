from __future__ import annotations

from django import forms

from claude.catalog import model_choices
from conversations.models import Conversation


class ConversationCreateForm(forms.Form):
    model = forms.ChoiceField(choices=model_choices)
    system_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=20_000
    )
    thinking_effort = forms.ChoiceField(choices=Conversation.ThinkingEffort.choices, required=False)


class ConversationRenameForm(forms.Form):
    title = forms.CharField(max_length=200)


class EstimateForm(forms.Form):
    text = forms.CharField(required=True, strip=False)
