"""A job page's websocket: progress frames (`job.progress`) until the job ends.

Thin: authorise at the handshake (someone who may not see the job is refused,
403), then send the job's progress whenever a worker says it changed (through
the channel layer, on Redis) and, because on the embedded default a worker's
in-memory layer reaches no web process, also read it every
SUMMARIES_PROGRESS_SECONDS and send it when it differs. Each read asks again
whether the socket may see the job; if not, it closes with 4403.
"""

from __future__ import annotations

import asyncio
import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from accounts.sessions import socket_session, user_sockets_group
from conversations.language import scope_language
from infra.db_threads import db_async
from summaries import selectors, services

logger = logging.getLogger(__name__)

CLOSE_ACCESS_REVOKED = 4403


class SummaryJobConsumer(AsyncWebsocketConsumer):
    watcher: asyncio.Task | None = None
    groups_joined: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        # The page's language (its status words and the revoked note), picked once
        # at the handshake as the chat's socket does; the watcher task inherits it.
        with translation.override(scope_language(scope)):
            await super().__call__(scope, receive, send)

    async def connect(self) -> None:
        user = self.scope.get("user")
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        job = await db_async(selectors.job_for_user)(user=user, job_id=job_id)
        if job is None:
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.job_id = job.pk
        self.access = {**socket_session(self.scope), "job_id": job.pk}
        self.last_sent = ""
        self.groups_joined = [services.job_group(job.pk), user_sockets_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self._send_progress()
        self.watcher = asyncio.ensure_future(self._watch())

    async def disconnect(self, code: int) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data and '"ping"' in text_data:
            await self.send(text_data='{"type":"pong"}')

    async def job_changed(self, event: dict) -> None:
        await self._send_progress()

    async def access_check(self, event: dict) -> None:
        # A sign-out names its session: Django signals it before the row is gone.
        if event.get("ended_session") == self.access["session_key"] or not await db_async(
            selectors.socket_may_see_job
        )(**self.access):
            await self._revoke()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(settings.SUMMARIES_PROGRESS_SECONDS)
            try:
                if not await db_async(selectors.socket_may_see_job)(**self.access):
                    await self._revoke()
                    return
                if await self._send_progress():
                    return  # ended: nothing more will change
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Could not read the progress of summary job %s", self.job_id)

    async def _send_progress(self) -> bool:
        """Send the job's progress if it changed; True once the job has ended."""
        progress = await db_async(services.job_progress)(job_id=self.job_id)
        if progress is None:
            await self._revoke()
            return True
        frame = progress.as_frame()
        text = json.dumps(frame)
        if text != self.last_sent:
            self.last_sent = text
            await self.send(text_data=text)
        return frame["ended"]

    async def _revoke(self) -> None:
        await self.send(
            text_data=json.dumps(
                {
                    "type": "error",
                    "code": "access_revoked",
                    "message": gettext("You can no longer see this job."),
                }
            )
        )
        await self.close(CLOSE_ACCESS_REVOKED)
