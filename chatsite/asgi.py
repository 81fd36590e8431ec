"""ASGI entry point: HTTP through Django, websockets through Channels."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Django must be set up before the routing (and so the models) is imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.signals import request_finished  # noqa: E402

from conversations.attachments.upload_gate import UploadGate  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402
from infra.db_threads import request_connections_close  # noqa: E402
from summaries.routing import websocket_urlpatterns as summaries_websockets  # noqa: E402

# Each request's thread ends with it: so does its connection.
request_finished.connect(request_connections_close)

application = ProtocolTypeRouter(
    {
        # An upload is refused from its headers, before Django reads its body.
        "http": UploadGate(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            # The conversations' routes end with a catch-all refusal: the jobs' go first.
            AuthMiddlewareStack(URLRouter([*summaries_websockets, *websocket_urlpatterns]))
        ),
    }
)

# Everything loaded so far (Django, the apps, the libraries) lives as long as the
# process: move it out of the collector's sight. A full collection otherwise
# scanned all of it, pausing every stream for 110-160 ms (measured at 200 streams).
gc.collect()
gc.freeze()
# What is left for a full collection is the live sockets and replies (about 290
# objects a socket, 58,000 at 200 streams): still a 40 ms pause. At the default
# (a full collection after 10 younger ones, once a quarter of the old objects are
# new) a busy process ran one every few seconds, and those pauses were the whole
# added-time-to-first-token tail: p99 35-69 ms at 200 streams against 17-24 ms
# with one after 100 younger collections (about every 20 s at 50 sends/s). Short-
# lived cyclic garbage still goes in the young collections, which are unchanged.
GC_FULL_AFTER_YOUNGER = 100
gc.set_threshold(gc.get_threshold()[0], gc.get_threshold()[1], GC_FULL_AFTER_YOUNGER)
