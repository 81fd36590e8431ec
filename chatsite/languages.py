"""The languages the site has translations for, read off its locale folder."""

from __future__ import annotations

from pathlib import Path

from django.utils.translation import get_language_info, to_language


def translated_languages(locale_dir: Path) -> list[tuple[str, str]]:
    """`(code, name)` for each `<locale>/LC_MESSAGES/django.mo` under `locale_dir`.

    Only compiled catalogs count: a folder `makemessages` has just made holds
    nothing a reader could see yet.
    """
    languages = []
    for catalog in sorted(locale_dir.glob("*/LC_MESSAGES/django.mo")):
        code = to_language(catalog.parent.parent.name)
        try:
            name = get_language_info(code)["name_local"]
        except KeyError:
            name = code
        languages.append((code, name))
    return languages
