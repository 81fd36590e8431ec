from django.http import HttpRequest

from claude.client import claude_is_fake


def claude_mode(request: HttpRequest) -> dict:
    """Every page says plainly when answers come from the offline fake."""
    return {"claude_is_fake": claude_is_fake()}
