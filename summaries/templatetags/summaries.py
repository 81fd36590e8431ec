"""`{% latest_summary conversation as summary %}`: the conversation page's summary.

A tag rather than the conversation view's context: the summaries app sits above
conversations, which never imports it. The caller has authorised `conversation`.
"""

from __future__ import annotations

from django import template

from summaries.selectors import latest_summary_for_conversation

register = template.Library()


@register.simple_tag
def latest_summary(conversation):
    if conversation is None:
        return None
    return latest_summary_for_conversation(conversation=conversation)
