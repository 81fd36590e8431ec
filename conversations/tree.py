"""A conversation's messages as a tree: its branches, and the one on show.

Each message follows its `parent`; an edited message or a regenerated answer
is a sibling of the version it replaces, so every version keeps the branch
below it. The conversation's `active_leaf` ends the branch on show, which is
also, exactly, the history the next request sends (nothing of the others).
Pure functions over messages already read: no queries here.

A message stored without a parent past position 0 (rows written as a list, by
positions only, before branches) follows the message at the position before
it, so such a conversation is one branch, as the migration makes stored ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def _order(message: Any) -> tuple:
    created = message.created_at
    return (created is None, created.timestamp() if created else 0.0, str(message.id))


@dataclass
class Tree:
    by_id: dict
    children: dict
    parent_of: dict

    @classmethod
    def of(cls, messages: Iterable[Any]) -> Tree:
        listed = sorted(messages, key=lambda m: (m.position, *_order(m)))
        by_id = {m.id: m for m in listed}
        last_at: dict[int, Any] = {}
        parent_of: dict = {}
        children: dict = {}
        for message in listed:
            parent_id = message.parent_id
            if parent_id is None and message.position > 0 and message.position - 1 in last_at:
                parent_id = last_at[message.position - 1].id
            parent_of[message.id] = parent_id
            children.setdefault(parent_id, []).append(message)
            last_at[message.position] = message
        return cls(by_id, children, parent_of)

    def path_to(self, message_id: uuid.UUID | None) -> list:
        """The branch from the first message down to `message_id`, in order."""
        path = []
        node = self.by_id.get(message_id)
        seen = set()
        while node is not None and node.id not in seen:
            seen.add(node.id)
            path.append(node)
            node = self.by_id.get(self.parent_of.get(node.id))
        path.reverse()
        return path

    def leaf_below(self, message_id: uuid.UUID | None) -> uuid.UUID | None:
        """The leaf reached from `message_id` (None: from the top) by taking, at each
        step, the child last on show (else the newest): where a switch lands."""
        node_id = message_id
        while True:
            kids = self.children.get(node_id)
            if not kids:
                return node_id
            node_id = max(
                kids, key=lambda m: (m.selected_at is not None, m.selected_at or 0, _order(m))
            ).id

    def active_path(self, leaf_id: uuid.UUID | None) -> list:
        """The branch on show: down to `leaf_id`, or, with none stored (an empty
        conversation, or its leaf just replaced), the one last on show."""
        if leaf_id is None or leaf_id not in self.by_id:
            leaf_id = self.leaf_below(None)
        return self.path_to(leaf_id)

    def siblings(self, message: Any) -> Sequence:
        """The versions of `message` (itself included), oldest first."""
        return self.children.get(self.parent_of.get(message.id), [message])

    def version_of(self, message: Any) -> tuple[int, int, list[str]]:
        """(1-based index, count, ids in order) of `message` among its versions."""
        ids = [str(m.id) for m in self.siblings(message)]
        return ids.index(str(message.id)) + 1, len(ids), ids
