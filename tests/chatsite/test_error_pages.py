"""Errors show the site's own pages, styled like the app with a way back, never
Django's debug page (which lists every URL pattern) - also in development mode,
which is what `make run` serves."""

from __future__ import annotations

import pytest
from django.test import Client


def test_an_unknown_address_gets_the_sites_404_with_a_way_to_sign_in(client):
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "We can’t find that page" in html
    assert 'href="/accounts/login/"' in html
    assert "chat/chat.css" in html  # templates/base.html, the app's styles
    assert "URLconf" not in html and "urlpatterns" not in html


def test_a_signed_in_person_gets_a_link_back_to_a_new_chat(client, alice):
    client.force_login(alice)
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert 'href="/"' in html and "Start a new chat" in html


@pytest.mark.urls("tests.chatsite.failing_urls")
def test_a_failing_view_gets_the_sites_500_with_a_link_home(db):
    response = Client(raise_request_exception=False).get("/fails/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert 'href="/"' in html
    assert "chat/chat.css" in html
    assert "a bug in a view" not in html and "Traceback" not in html
