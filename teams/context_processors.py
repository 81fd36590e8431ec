from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.teams import request_team_state


def team_switcher(request: HttpRequest) -> dict:
    """The sidebar's team switcher: the person's teams and the one they work in.
    Read only by pages that draw the sidebar, once per request."""

    def build() -> dict:
        if not getattr(request, "user", None) or not request.user.is_authenticated:
            return {"teams": [], "current": None}
        state = request_team_state(request)
        return {"teams": state.teams, "current": state.current}

    return {"team_switcher": SimpleLazyObject(build)}
