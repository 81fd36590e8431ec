from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from claude.catalog import model_choices
from infra.forms import DatePicker


class SummaryJobForm(forms.Form):
    """What to summarise: all of the team's conversations, or a person's, in a date range."""

    person = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, empty_label=_("Everyone in the team")
    )
    since = forms.DateField(required=False, widget=DatePicker)
    until = forms.DateField(required=False, widget=DatePicker)
    model = forms.ChoiceField(choices=())
    instruction = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Empty: a concise summary with decisions, open questions and action items."),
    )

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["person"].queryset = User.objects.filter(memberships__team=team).order_by(
            "username"
        )
        self.fields["model"].choices = model_choices()
        self.fields["model"].initial = settings.SUMMARIES_DEFAULT_MODEL

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        return cleaned


class DigestForm(forms.Form):
    enabled = forms.BooleanField(required=False)
