from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from conversations import signals  # noqa: F401  (connects the receivers)

        post_migrate.connect(_search_index_ensure, sender=self)


def _search_index_ensure(using: str, **kwargs) -> None:
    """A migration that rebuilt the message table on SQLite dropped the search
    triggers with it: put them back (conversations/search_index.py)."""
    from django.db import connections

    from conversations.search_index import fts_ensure

    fts_ensure(connections[using])
