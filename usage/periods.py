"""The budget period: a UTC calendar month."""

from __future__ import annotations

import datetime as dt

from django.utils import dateformat, timezone
from django.utils.translation import gettext


def month_start(when: dt.datetime | None = None) -> dt.date:
    """The first day of the UTC month `when` falls in: the budget period."""
    moment = (when or timezone.now()).astimezone(dt.UTC)
    return moment.date().replace(day=1)


def month_reset_at(month: dt.date) -> dt.datetime:
    """When the budget period starting on `month` ends: 00:00 UTC on the 1st of the next."""
    nxt = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime(nxt.year, nxt.month, 1, tzinfo=dt.UTC)


def reset_label(when: dt.datetime) -> str:
    """'1 December 2026, 00:00 UTC', the month named in the reader's language."""
    return gettext("%(date)s, 00:00 UTC") % {"date": dateformat.format(when, "j F Y")}
