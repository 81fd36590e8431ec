"""The one reader of the environment: typed getters with strict parsing.

Also the one keeper of the development secret key, the only setting that is not
in the environment but generated (see `development_secret_key`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def env_str(name: str, default: str | None = None) -> str:
    """Return the variable, or the default; with no default, the variable is required."""
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"Set the environment variable {name}.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    """A strict boolean: anything but true/false (or 1/0, yes/no, on/off) is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_choice(name: str, choices: Sequence[str], default: str) -> str:
    """One of a few words; anything else is an error, not a silent fallback to the default."""
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}.") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def development_secret_key(path: Path) -> str:
    """The key in `path`, made on first use: for development only, never in production.

    Generated rather than fixed, so no two checkouts share a key; kept in a file,
    so sessions survive a restart and the web process and the worker agree. The
    `django-insecure-` prefix is Django's own mark of a generated key: `check
    --deploy` warns about it (W009) if one ever reaches a deployment.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Web, worker and `manage.py` may start at the same moment: write the whole
    # key to a temporary file, then link it into place, which fails if another
    # process got there first (a rename would replace its key under it).
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".secret-", delete=False) as tmp:
        tmp.write(f"django-insecure-{get_random_secret_key()}\n")
    try:
        os.link(tmp.name, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp.name)
    return path.read_text().strip()
