"""The site's URLs plus one view that fails, to see the 500 page a person gets."""

from django.urls import path

from chatsite.urls import urlpatterns as site_urlpatterns


def failing_view(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("fails/", failing_view), *site_urlpatterns]
