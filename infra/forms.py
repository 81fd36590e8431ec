"""Form widgets every app's forms share."""

from __future__ import annotations

from django import forms


class DatePicker(forms.DateInput):
    """The browser's date picker. It takes and gives ISO dates whatever the page's
    language: the localized format (01.12.2026 in German) would leave it empty."""

    input_type = "date"

    def __init__(self, attrs=None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")
