"""Production's collected static files: the chat's modules import each other by
their hashed names."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.management import call_command
from django.test import override_settings


def test_collected_modules_import_hashed_siblings(tmp_path):
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "chatsite.static_storage.ModuleManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", "--noinput", verbosity=0)
    [main] = [p for p in (tmp_path / "chat").glob("main.*.js") if not p.name.endswith(".gz")]
    imports = re.findall(r'from\s+"(\./[^"]+)"', main.read_text())
    assert imports, "main.js imports its modules"
    for name in imports:
        assert re.fullmatch(r"\./[a-z0-9_]+\.[0-9a-f]{12}\.js", name), name
        assert (tmp_path / "chat" / name[2:]).exists()
