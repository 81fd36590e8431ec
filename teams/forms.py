from __future__ import annotations

from django import forms

from accounts.models import AuditEvent, Membership
from conversations.models import Conversation
from conversations.presets import NAME_MAX_CHARS, preset_model_choices


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class InviteAcceptForm(forms.Form):
    """A new account for the invited address."""

    username = forms.CharField(max_length=150)
    display_name = forms.CharField(max_length=150, required=False)
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    password_again = forms.CharField(widget=forms.PasswordInput, strip=False)


class PresetForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_CHARS)
    model = forms.ChoiceField(choices=preset_model_choices)
    system_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6}), max_length=20_000
    )
    thinking_effort = forms.ChoiceField(
        choices=Conversation.ThinkingEffort.choices, required=False, label="Thinking"
    )


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("", "Any action"), *AuditEvent.Action.choices], required=False
    )
    actor = forms.CharField(max_length=150, required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
