from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent, Membership
from conversations.models import Conversation
from conversations.presets import NAME_MAX_CHARS, preset_model_choices
from infra.forms import DatePicker


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254)
    role = forms.ChoiceField(
        label=_("Role"), choices=Membership.Role.choices, initial=Membership.Role.MEMBER
    )


class InviteAcceptForm(forms.Form):
    """A new account for the invited address."""

    username = forms.CharField(label=_("Username"), max_length=150)
    display_name = forms.CharField(label=_("Display name"), max_length=150, required=False)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, strip=False)
    password_again = forms.CharField(
        label=_("Password again"), widget=forms.PasswordInput, strip=False
    )


class PresetForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=NAME_MAX_CHARS)
    model = forms.ChoiceField(label=_("Model"), choices=preset_model_choices)
    system_prompt = forms.CharField(
        label=_("System prompt"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=20_000,
    )
    thinking_effort = forms.ChoiceField(
        choices=Conversation.ThinkingEffort.choices, required=False, label=_("Thinking")
    )


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("", _("Any action")), *AuditEvent.Action.choices], required=False
    )
    actor = forms.CharField(max_length=150, required=False)
    since = forms.DateField(required=False, widget=DatePicker)
    until = forms.DateField(required=False, widget=DatePicker)
