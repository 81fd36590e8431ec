from django.urls import path, re_path

from conversations.consumers import ConversationConsumer
from conversations.refused import RefusedConsumer

websocket_urlpatterns = [
    path("ws/c/<uuid:conversation_id>/", ConversationConsumer.as_asgi()),
    # Any other websocket path is refused at the handshake (403), not an error.
    re_path(r"", RefusedConsumer.as_asgi()),
]
