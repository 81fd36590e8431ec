from django.urls import path

from summaries.consumers import SummaryJobConsumer

websocket_urlpatterns = [
    path("ws/summaries/<int:job_id>/", SummaryJobConsumer.as_asgi()),
]
