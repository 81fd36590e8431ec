"""Translating, as the README says to: `make messages` finds the words of the
templates, the Python code and the browser modules; once translated and
compiled, a browser that asks for the language gets the pages, the socket's
messages and the JavaScript catalog in it, and one that asks for a language
with no catalog gets English."""

from __future__ import annotations

import gettext
import re
import shutil
from pathlib import Path

import pytest
from django.test import Client

from chatsite.languages import translated_languages

from .shell import fresh_env, readme_commands, run

# One word of each kind, and what the test translates it to.
TEMPLATE_WORDS = ("Import a chat", "Einen Chat importieren")
PYTHON_WORDS = ("New conversation", "Neue Unterhaltung")
JS_WORDS = ("Thought process", "Denkprozess")

pytestmark = pytest.mark.skipif(
    shutil.which("xgettext") is None and not __import__("os").environ.get("CI"),
    reason="GNU gettext is not installed (make test installs it)",
)


def _translate(po: Path, translations: dict[str, str]) -> None:
    text = po.read_text()
    for source, translated in translations.items():
        entry = f'msgid "{source}"\nmsgstr ""\n'
        assert entry in text, f"{source!r} is not in {po.name}"
        text = text.replace(entry, f'msgid "{source}"\nmsgstr "{translated}"\n')
    # makemessages marks a new file's header fuzzy, and msgfmt skips fuzzy entries.
    po.write_text(text.replace("#, fuzzy\n", "", 1))


def _msgids(mo: Path) -> set[str]:
    with mo.open("rb") as handle:
        return {key for key in gettext.GNUTranslations(handle)._catalog if isinstance(key, str)}


@pytest.fixture(scope="session")  # once a run, however pytest orders the tests
def german(tmp_path_factory) -> Path:
    """locale/de made and compiled by the README's commands, with three words translated."""
    root = tmp_path_factory.mktemp("translating")
    locale_dir = root / "locale"
    env = fresh_env(root / "var", CHAT_LOCALE_DIR=str(locale_dir))
    (make_messages,) = readme_commands(r"^make messages ")
    (compile_messages,) = readme_commands(r"^make compilemessages$")
    made = run(make_messages, env, timeout=300)
    assert made.returncode == 0, made.stderr
    messages = locale_dir / "de" / "LC_MESSAGES"
    _translate(messages / "django.po", dict([TEMPLATE_WORDS, PYTHON_WORDS]))
    _translate(messages / "djangojs.po", dict([JS_WORDS]))
    compiled = run(compile_messages, env, timeout=300)
    assert compiled.returncode == 0, compiled.stderr
    return locale_dir


def test_make_messages_finds_the_words_of_templates_python_and_javascript(german):
    messages = german / "de" / "LC_MESSAGES"
    site = _msgids(messages / "django.mo") | set(
        re.findall(r'^msgid "(.+)"$', (messages / "django.po").read_text(), flags=re.M)
    )
    browser = set(re.findall(r'^msgid "(.+)"$', (messages / "djangojs.po").read_text(), flags=re.M))
    assert {TEMPLATE_WORDS[0], PYTHON_WORDS[0]} <= site and JS_WORDS[0] in browser
    # Hundreds of words, none of them from the vendored libraries or the tests.
    assert len(site) > 300 and len(browser) > 50
    po = (messages / "djangojs.po").read_text()
    assert "static/vendor" not in po and "tests/" not in (messages / "django.po").read_text()


def test_a_compiled_language_is_offered_and_only_then(german, tmp_path):
    assert translated_languages(german) == [("de", "Deutsch")]
    (tmp_path / "fr" / "LC_MESSAGES").mkdir(parents=True)  # made, never compiled
    assert translated_languages(tmp_path) == []


@pytest.fixture
def site_in_german(settings, german):
    settings.LOCALE_PATHS = [german]
    settings.LANGUAGES = [("en", "English"), *translated_languages(german)]


def test_a_browser_asking_for_german_gets_the_page_and_the_catalog_in_german(
    site_in_german, alice
):
    client = Client(headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert '<html lang="de"' in page and TEMPLATE_WORDS[1] in page
    catalog = client.get("/jsi18n/")
    assert catalog.status_code == 200 and catalog["Content-Language"] == "de"
    assert f'"{JS_WORDS[0]}": "{JS_WORDS[1]}"' in catalog.content.decode()
    assert "Accept-Language" in catalog["Vary"]


def test_a_language_with_no_catalog_gets_english(site_in_german, alice):
    """Django has French of its own; the site does not, so French readers get English."""
    client = Client(headers={"accept-language": "fr"})
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert '<html lang="en' in page and TEMPLATE_WORDS[0] in page
    assert "Se déconnecter" not in page


def test_the_catalog_is_cached_and_revalidated(client):
    first = client.get("/jsi18n/")
    assert first.status_code == 200 and "max-age=3600" in first["Cache-Control"]
    again = client.get("/jsi18n/", headers={"if-modified-since": first["Last-Modified"]})
    assert again.status_code == 304
