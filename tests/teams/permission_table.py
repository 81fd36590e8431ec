"""Who may use what: the ONE list behind docs/permissions.md and tests/teams/test_permissions.py.

Each URL row is (URL name, method, path, what each actor gets, note). The
actors, in the world of tests/teams/conftest.py, looking at bob's conversation
in Acme (shared with dave):

    anonymous        signed out
    other_team       carol, owner of Globex
    teammate         frank, an Acme member it is not shared with
    shared_teammate  dave, an Acme member it is shared with
    owner            bob, the conversation's owner (an Acme member)
    team_admin       erin, admin of Acme
    team_owner       alice, owner of Acme
    staff            admin, staff and superuser, in no team
    removed          gina, removed from Acme (the share to her stays in the database)

What they get: "200" (the page), "done" (the action happened: a redirect that is
not to the sign-in page), "login" (sent to sign in), or the status code: "404"
where the object must not be revealed, "403" where the person knows it exists
but lacks the role, "400"/"409"/"410" for a refusal with a message.

`python -m tests.teams.permission_table` prints the Markdown tables that
docs/permissions.md holds between its markers (the test checks they match).
"""

from __future__ import annotations

ACTORS = [
    "anonymous",
    "other_team",
    "teammate",
    "shared_teammate",
    "owner",
    "team_admin",
    "team_owner",
    "staff",
    "removed",
]

ACTOR_TITLES = {
    "anonymous": "Anonymous",
    "other_team": "Other team",
    "teammate": "Teammate, no share",
    "shared_teammate": "Teammate with a share",
    "owner": "Conversation's owner",
    "team_admin": "Team admin",
    "team_owner": "Team owner",
    "staff": "Staff",
    "removed": "Removed member",
}


def _all(value: str, **overrides: str) -> dict[str, str]:
    """Every signed-in actor gets `value` (anonymous: login), but the overrides."""
    got = {actor: value for actor in ACTORS}
    got["anonymous"] = "login"
    got.update(overrides)
    return got


def _only(value: str, allowed: tuple[str, ...], *, members: str = "404", **overrides: str):
    """`allowed` get `value`; the team's other members `members`; everyone else 404."""
    got = _all("404")
    for actor in ("teammate", "shared_teammate", "owner", "team_admin", "team_owner"):
        got[actor] = members
    for actor in allowed:
        got[actor] = value
    got.update(overrides)
    return got


_CONVERSATION_READ = _only("200", ("shared_teammate", "owner"))
_OWNER_ONLY_ACTION = _only("done", ("owner",))
_MANAGERS = ("team_admin", "team_owner")

# (URL name, method, path, expected per actor, note)
URLS: list[tuple[str, str, str, dict[str, str], str]] = [
    ("home", "GET", "/", _all("200"), "The empty state and the sidebar."),
    ("conversation_create", "POST", "/c/new/", _all("done"), "A conversation in the current team."),
    (
        "conversation_search",
        "GET",
        "/search/?q=Plans",
        _all("200"),
        "Lists only what `conversation_for_user` lets one see: Plans for its owner and"
        " the teammate it is shared with, for no one else.",
    ),
    (
        "conversation_detail",
        "GET",
        "/c/{c}/",
        _CONVERSATION_READ,
        "Read-only for a teammate with a share.",
    ),
    ("conversation_rename", "POST", "/c/{c}/rename/", _OWNER_ONLY_ACTION, ""),
    (
        "conversation_pin",
        "POST",
        "/c/{c}/pin/",
        _OWNER_ONLY_ACTION,
        "A pin is the owner's sidebar; one shared with you: 404.",
    ),
    ("conversation_delete", "POST", "/c/{c}/delete/", _OWNER_ONLY_ACTION, ""),
    (
        "conversation_share",
        "GET",
        "/c/{c}/share/",
        _only("200", ("owner",)),
        "Share with the team, teammates or by link; stop sharing.",
    ),
    (
        "conversation_continue",
        "POST",
        "/c/{c}/continue/",
        _only("done", ("shared_teammate", "owner")),
        "A copy as one's own conversation, same team.",
    ),
    (
        "conversation_settings",
        "POST",
        "/c/{c}/settings/",
        _OWNER_ONLY_ACTION,
        "Model, system prompt, thinking of the answers from now on.",
    ),
    (
        "conversation_export_json",
        "GET",
        "/c/{c}/export.json",
        _CONVERSATION_READ,
        "Whoever may see it may export it (audited).",
    ),
    (
        "conversation_export_markdown",
        "GET",
        "/c/{c}/export.md",
        _CONVERSATION_READ,
        "",
    ),
    (
        "conversation_import",
        "POST",
        "/import/",
        _all("400"),
        "An import is one's own new conversation; with no file: 400.",
    ),
    (
        "conversation_estimate",
        "POST",
        "/c/{c}/estimate/",
        _only("200", ("owner",), anonymous="404"),
        "Async view: signed out is 404 as well.",
    ),
    (
        "attachment_upload",
        "POST",
        "/c/{c}/attachments/",
        _only("400", ("owner",)),
        "The owner's empty upload is 400 (202 with a file).",
    ),
    (
        "attachment_detail",
        "GET",
        "/attachments/{a}/",
        _CONVERSATION_READ,
        "Whoever may see the conversation.",
    ),
    (
        "attachment_detail",
        "DELETE",
        "/attachments/{a}/",
        _only("409", ("owner",), shared_teammate="403"),
        "Only the uploader, only before it is sent (this one was sent: 409).",
    ),
    ("attachment_file", "GET", "/attachments/{a}/file", _CONVERSATION_READ, ""),
    ("attachment_thumbnail", "GET", "/attachments/{a}/thumbnail", _CONVERSATION_READ, ""),
    ("my_usage", "GET", "/usage/", _all("200"), "One's own usage only."),
    ("team_budget", "GET", "/usage/team/{slug}/budget/", _only("200", _MANAGERS), ""),
    (
        "team_budget",
        "POST",
        "/usage/team/{slug}/budget/",
        _only("done", _MANAGERS),
        "Audited (budget_changed).",
    ),
    (
        "team_detail",
        "GET",
        "/teams/{slug}/",
        _only("200", (), members="200"),
        "Members, invitations (managers), budget and spend, presets.",
    ),
    ("team_switch", "POST", "/teams/{slug}/switch/", _only("done", (), members="done"), ""),
    (
        "team_invite",
        "POST",
        "/teams/{slug}/invites/",
        _only("done", _MANAGERS, members="403"),
        "Admins invite members and admins; owners anyone.",
    ),
    (
        "team_invite_revoke",
        "POST",
        "/teams/{slug}/invites/{invite}/revoke/",
        _only("done", _MANAGERS, members="403"),
        "",
    ),
    (
        "team_member_role",
        "POST",
        "/teams/{slug}/members/{member}/role/",
        _only("done", _MANAGERS, members="403"),
        "Admins not on owners; the last owner stays.",
    ),
    (
        "team_member_remove",
        "POST",
        "/teams/{slug}/members/{member}/remove/",
        _only("done", _MANAGERS, members="403"),
        "Anyone may remove themselves (leave).",
    ),
    (
        "team_settings",
        "POST",
        "/teams/{slug}/settings/",
        _only("done", ("team_owner",), members="403"),
        "Read-only links on or off.",
    ),
    (
        "team_preset_new",
        "GET",
        "/teams/{slug}/presets/new/",
        _only("200", _MANAGERS, members="403"),
        "",
    ),
    (
        "team_preset_edit",
        "GET",
        "/teams/{slug}/presets/{preset}/",
        _only("200", _MANAGERS, members="403"),
        "",
    ),
    (
        "team_preset_delete",
        "POST",
        "/teams/{slug}/presets/{preset}/delete/",
        _only("done", _MANAGERS, members="403"),
        "",
    ),
    (
        "team_audit",
        "GET",
        "/teams/{slug}/audit/",
        _only("200", ("team_owner", "staff"), members="403"),
        "Filterable; ?format=csv.",
    ),
    ("audit_all", "GET", "/audit/", _all("404", staff="200"), "Every event, sign-ins included."),
    (
        "invite_accept",
        "GET",
        "/invites/{token}/",
        _all("403", anonymous="200"),
        "Sent to new@example.com: any other account is refused.",
    ),
    ("login", "GET", "/accounts/login/", _all("200", anonymous="200"), ""),
    (
        "javascript_catalog",
        "GET",
        "/jsi18n/",
        _all("200", anonymous="200"),
        "The browser modules' words in the reader's language; the sign-in page needs them too.",
    ),
    ("logout", "POST", "/accounts/logout/", _all("done", anonymous="done"), ""),
    ("password_change", "GET", "/accounts/password/", _all("200"), ""),
    ("password_change_done", "GET", "/accounts/password/done/", _all("200"), ""),
    # Batch summaries (docs/summaries.md): a summary shows what private
    # conversations said, so only the team's managers (and staff) see them.
    ("team_summaries", "GET", "/teams/{slug}/summaries/", _only("200", _MANAGERS), ""),
    (
        "team_summaries",
        "POST",
        "/teams/{slug}/summaries/",
        _only("400", _MANAGERS),
        "An empty form is refused; a valid one shows the estimate, then starts the job "
        "(audited: summary_started). Staff start jobs from the admin.",
    ),
    (
        "summary_digest",
        "POST",
        "/teams/{slug}/summaries/digest/",
        _only("done", ("team_owner",), team_admin="403"),
        "The weekly digest: owners only.",
    ),
    ("summary_job", "GET", "/summaries/{job}/", _only("200", _MANAGERS, staff="200"), ""),
    (
        "summary_job_cancel",
        "POST",
        "/summaries/{job}/cancel/",
        _only("done", _MANAGERS, staff="done"),
        "",
    ),
    # Sign-in through django-allauth (docs/sign-in.md): its pages about one's own
    # account; none shows anything of a team or a conversation.
    ("account_login", "GET", "/accounts/login/", _all("200", anonymous="200"), ""),
    ("account_logout", "POST", "/accounts/logout/", _all("done", anonymous="done"), ""),
    (
        "account_signup",
        "GET",
        "/accounts/signup/",
        _all("200", anonymous="200"),
        "Says sign-up is closed: people join by invitation or single sign-on.",
    ),
    ("account_inactive", "GET", "/accounts/inactive/", _all("200", anonymous="200"), ""),
    ("account_reauthenticate", "GET", "/accounts/reauthenticate/", _all("200"), ""),
    (
        "account_request_reauthentication_code",
        "GET",
        "/accounts/reauthenticate/code/",
        _all("done"),
        "Login codes are off: back to the password.",
    ),
    (
        "account_confirm_reauthentication_code",
        "GET",
        "/accounts/reauthenticate/code/confirm/",
        _all("done"),
        "Login codes are off: back to the password.",
    ),
    ("account_email", "GET", "/accounts/email/", _all("200"), "One's own addresses."),
    (
        "account_email_verification_sent",
        "GET",
        "/accounts/confirm-email/",
        _all("200", anonymous="200"),
        "",
    ),
    (
        "account_confirm_email",
        "GET",
        "/accounts/confirm-email/not-a-key/",
        _all("200", anonymous="200"),
        "An unknown key says so.",
    ),
    ("account_change_password", "GET", "/accounts/password/change/", _all("200"), ""),
    ("account_set_password", "GET", "/accounts/password/set/", _all("done"), ""),
    (
        "account_reset_password",
        "GET",
        "/accounts/password/reset/",
        _all("200", anonymous="200"),
        "The answer is the same whether or not the address has an account.",
    ),
    (
        "account_reset_password_done",
        "GET",
        "/accounts/password/reset/done/",
        _all("200", anonymous="200"),
        "",
    ),
    (
        "account_reset_password_from_key",
        "GET",
        "/accounts/password/reset/key/1-not-a-key/",
        _all("200", anonymous="200"),
        "A bad or used link says so.",
    ),
    (
        "account_reset_password_from_key_done",
        "GET",
        "/accounts/password/reset/key/done/",
        _all("200", anonymous="200"),
        "",
    ),
    (
        "account_confirm_login_code",
        "GET",
        "/accounts/login/code/confirm/",
        _all("done", anonymous="done"),
        "Login codes are off: sent on to sign in.",
    ),
    (
        "account_security",
        "GET",
        "/accounts/security/",
        _all("200"),
        "Two-factor for oneself; the team requirement for the teams one owns.",
    ),
    ("mfa_index", "GET", "/accounts/2fa/", _all("200"), "One's own second factor."),
    (
        "mfa_authenticate",
        "GET",
        "/accounts/2fa/authenticate/",
        _all("done", anonymous="done"),
        "Only during a sign-in that needs the code.",
    ),
    ("mfa_reauthenticate", "GET", "/accounts/2fa/reauthenticate/", _all("done"), ""),
    (
        "mfa_activate_totp",
        "GET",
        "/accounts/2fa/totp/activate/",
        _all("done"),
        "Asks for the password first.",
    ),
    (
        "mfa_deactivate_totp",
        "GET",
        "/accounts/2fa/totp/deactivate/",
        _all("404"),
        "Nothing to turn off until one is on.",
    ),
    ("mfa_view_recovery_codes", "GET", "/accounts/2fa/recovery-codes/", _all("404"), ""),
    (
        "mfa_generate_recovery_codes",
        "GET",
        "/accounts/2fa/recovery-codes/generate/",
        _all("done"),
        "Asks for the password first.",
    ),
    (
        "mfa_download_recovery_codes",
        "GET",
        "/accounts/2fa/recovery-codes/download/",
        _all("404"),
        "",
    ),
    (
        "socialaccount_login_cancelled",
        "GET",
        "/accounts/3rdparty/login/cancelled/",
        _all("200", anonymous="200"),
        "",
    ),
    (
        "socialaccount_login_error",
        "GET",
        "/accounts/3rdparty/login/error/",
        _all("401", anonymous="401"),
        "A page saying the sign-in failed.",
    ),
    (
        "socialaccount_signup",
        "GET",
        "/accounts/3rdparty/signup/",
        _all("done", anonymous="done"),
        "Only during a single sign-on.",
    ),
    ("socialaccount_connections", "GET", "/accounts/3rdparty/", _all("200"), ""),
    # allauth's older addresses of the same four pages: redirects to the new ones.
    (
        "social/login/cancelled/",
        "GET",
        "/accounts/social/login/cancelled/",
        _all("done", anonymous="done"),
        "",
    ),
    (
        "social/login/error/",
        "GET",
        "/accounts/social/login/error/",
        _all("done", anonymous="done"),
        "",
    ),
    ("social/signup/", "GET", "/accounts/social/signup/", _all("done", anonymous="done"), ""),
    (
        "social/connections/",
        "GET",
        "/accounts/social/connections/",
        _all("done", anonymous="done"),
        "",
    ),
    (
        "openid_connect_login",
        "GET",
        "/accounts/oidc/sso/login/",
        _all("404", anonymous="404"),
        "Single sign-on is not configured in this table's world.",
    ),
    (
        "openid_connect_callback",
        "GET",
        "/accounts/oidc/sso/login/callback/",
        _all("404", anonymous="404"),
        "Answered by sso_callback, which checks the signature.",
    ),
    (
        "sso_callback",
        "GET",
        "/accounts/oidc/sso/login/callback/",
        _all("404", anonymous="404"),
        "Single sign-on is not configured in this table's world.",
    ),
]

# Every page of the Django admin (the `admin:` namespace, the usage report
# included): staff with the model permission; anyone else is sent to the admin's
# sign-in page. Every admin action (delete_selected and the apps' own) runs from
# a change list, so the same.
ADMIN = {actor: "login" for actor in ACTORS} | {"staff": "200"}

# The conversation's websocket, /ws/c/<id>/: the handshake, then each frame.
# "refused": the handshake is refused (403, nothing revealed); "reply": the
# reply streams; "read_only": an error frame `read_only`, the socket stays open;
# "silent": nothing happens; "pong"; an error code; or the frame that announces
# the change (branch.switched).
SOCKET_CONNECT = {actor: "refused" for actor in ACTORS} | {
    "shared_teammate": "accepted",
    "owner": "accepted",
}
SOCKET_FRAMES: list[tuple[str, dict[str, str], str]] = [
    ("message.send", {"owner": "reply", "shared_teammate": "read_only"}, "Billed to the owner."),
    (
        "message.retry",
        {"owner": "not_retryable", "shared_teammate": "read_only"},
        "With a reply that cannot be retried.",
    ),
    (
        "generation.stop",
        {"owner": "silent", "shared_teammate": "read_only"},
        "With no reply running.",
    ),
    (
        "resume",
        {"owner": "not_found", "shared_teammate": "not_found"},
        "With an unknown reply: watchers resume too.",
    ),
    ("ping", {"owner": "pong", "shared_teammate": "pong"}, ""),
    (
        "message.edit",
        {"owner": "reply", "shared_teammate": "read_only"},
        "Of the first question: a new branch and its answer.",
    ),
    (
        "message.regenerate",
        {"owner": "reply", "shared_teammate": "read_only"},
        "Of the last answer.",
    ),
    (
        "message.continue",
        {"owner": "not_continuable", "shared_teammate": "read_only"},
        "Of an answer that did not stop at max_tokens.",
    ),
    (
        "branch.switch",
        {"owner": "branch.switched", "shared_teammate": "read_only"},
        "To the first branch (the branch on show is shared state: watchers see it follow).",
    ),
]
SOCKET_REVOCATION = (
    "A socket is closed with 4403 within 2 seconds, on every web process, when its "
    "session ends, the account is deactivated or its password changes, its person "
    "is removed from the conversation's team (or the owner is), or the share it "
    "relied on ends; a frame sent in between is refused (each frame is checked)."
)


def markdown() -> str:
    """The tables of docs/permissions.md."""
    head = "| URL | Method | " + " | ".join(ACTOR_TITLES[a] for a in ACTORS) + " | Note |"
    rule = "|" + "---|" * (len(ACTORS) + 3)
    lines = [head, rule]
    for name, method, path, got, note in URLS:
        cells = " | ".join(got[a] for a in ACTORS)
        lines.append(f"| `{path}` ({name}) | {method} | {cells} | {note} |")
    cells = " | ".join(ADMIN[a] for a in ACTORS)
    lines.append(f"| `/admin/…` (every admin page and action) | any | {cells} | Superuser here. |")
    lines += ["", "| Socket | " + " | ".join(ACTOR_TITLES[a] for a in ACTORS) + " | Note |"]
    lines.append("|" + "---|" * (len(ACTORS) + 2))
    lines.append(
        "| connect `/ws/c/<id>/` | " + " | ".join(SOCKET_CONNECT[a] for a in ACTORS) + " | |"
    )
    for frame, got, note in SOCKET_FRAMES:
        cells = " | ".join(got.get(a, "—") for a in ACTORS)
        lines.append(f"| `{frame}` | {cells} | {note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
