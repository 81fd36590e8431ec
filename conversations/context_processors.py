from django.http import HttpRequest

from claude.client import claude_is_fake

THEMES = ("light", "dark", "system")
THEME_COOKIE = "chat_theme"
SIDEBAR_COOKIE = "chat_sidebar"


def claude_mode(request: HttpRequest) -> dict:
    """Every page says plainly when answers come from the offline fake."""
    return {"claude_is_fake": claude_is_fake()}


def ui_preferences(request: HttpRequest) -> dict:
    """The theme (light, dark or the system's) and whether the sidebar is
    collapsed, from cookies the page sets (static/chat/shell.js), so the first
    paint is already right (no inline script may run before it: CSP)."""
    theme = request.COOKIES.get(THEME_COOKIE, "system")
    if theme not in THEMES:
        theme = "system"
    media = {
        "light": ("all", "not all"),
        "dark": ("not all", "all"),
        "system": ("(prefers-color-scheme: light)", "(prefers-color-scheme: dark)"),
    }[theme]
    return {
        "ui_theme": theme,
        "ui_light_media": media[0],
        "ui_dark_media": media[1],
        "ui_sidebar_collapsed": request.COOKIES.get(SIDEBAR_COOKIE) == "collapsed",
    }
