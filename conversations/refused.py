from channels.generic.websocket import AsyncWebsocketConsumer


class RefusedConsumer(AsyncWebsocketConsumer):
    """A websocket path that serves nothing: the handshake is refused (HTTP 403),
    as for a conversation the person may not see."""

    async def connect(self) -> None:
        await self.close()
