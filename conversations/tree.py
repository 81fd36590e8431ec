"""A conversation's messages as a tree: its branches, and the one on show.

Each message follows its `parent`; an edited message or a regenerated answer
is a sibling of the version it replaces, so every version keeps the branch
below it. The conversation's `active_leaf` ends the branch on show, which is
also, exactly, the history the next request sends (nothing of the others).
Pure functions over messages already read: no queries here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Node(Protocol):
    id: uuid.UUID
    parent_id: uuid.UUID | None
    created_at: object
    selected_at: object


def _order(message: Node) -> tuple:
    return (message.created_at is None, message.created_at, str(message.id))


@dataclass
class Tree:
    by_id: dict
    children: dict

    @classmethod
    def of(cls, messages: Iterable[Node]) -> Tree:
        by_id: dict = {}
        children: dict = {}
        for message in messages:
            by_id[message.id] = message
            children.setdefault(message.parent_id, []).append(message)
        for siblings in children.values():
            siblings.sort(key=_order)
        return cls(by_id, children)

    def path_to(self, message_id: uuid.UUID | None) -> list:
        """The branch from the first message down to `message_id`, in order."""
        path = []
        node = self.by_id.get(message_id)
        seen = set()
        while node is not None and node.id not in seen:
            seen.add(node.id)
            path.append(node)
            node = self.by_id.get(node.parent_id)
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
                kids, key=lambda m: (m.selected_at is not None, m.selected_at, _order(m))
            ).id

    def active_path(self, leaf_id: uuid.UUID | None) -> list:
        """The branch on show: down to `leaf_id`, or, with none stored (an empty
        conversation, or its leaf just replaced), the one last on show."""
        if leaf_id is None or leaf_id not in self.by_id:
            leaf_id = self.leaf_below(None)
        return self.path_to(leaf_id)

    def siblings(self, message: Node) -> Sequence:
        """The versions of `message` (itself included), oldest first."""
        return self.children.get(message.parent_id, [message])

    def version_of(self, message: Node) -> tuple[int, int, list[str]]:
        """(1-based index, count, ids in order) of `message` among its versions."""
        versions = self.siblings(message)
        ids = [str(m.id) for m in versions]
        return ids.index(str(message.id)) + 1, len(ids), ids
