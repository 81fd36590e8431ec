from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.teams import team_list_for_user, user_current_team


def team_switcher(request: HttpRequest) -> dict:
    """The sidebar's team switcher: the person's teams and the one they work in.
    Read only by pages that draw the sidebar."""

    def build() -> dict:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return {"teams": [], "current": None}
        return {
            "teams": team_list_for_user(user=user),
            "current": user_current_team(user=user, session=request.session),
        }

    return {"team_switcher": SimpleLazyObject(build)}
