from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _


class BudgetForm(forms.Form):
    monthly_limit_usd = forms.DecimalField(
        label=_("Monthly budget (USD)"),
        required=False,
        min_value=Decimal(0),
        max_digits=14,
        decimal_places=2,
        help_text=_("Leave empty for no limit."),
    )


class ReportFilterForm(forms.Form):
    start = forms.DateField(required=False)
    end = forms.DateField(required=False)
    team = forms.IntegerField(required=False)
    user = forms.IntegerField(required=False)
    model = forms.CharField(required=False, max_length=100)
    sort = forms.CharField(required=False, max_length=40)
    chart = forms.ChoiceField(required=False, choices=[("team", "team"), ("user", "user")])
