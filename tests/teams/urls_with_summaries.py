"""The site's URLs plus a stand-in for the summaries page another part adds."""

from django.http import HttpResponse
from django.urls import path

from chatsite.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    path(
        "teams/<slug:slug>/summaries/",
        lambda request, slug: HttpResponse("ok"),
        name="team_summaries",
    ),
    *site_urlpatterns,
]
