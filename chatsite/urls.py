from allauth.account import views as allauth_views
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import last_modified
from django.views.i18n import JavaScriptCatalog

from accounts import sso
from accounts import views as account_views

# The catalogs change only when the site is deployed again, so a browser keeps its
# copy for an hour and then asks whether it changed since this process started.
_catalogs_loaded_at = timezone.now()
javascript_catalog = cache_control(max_age=3600, private=True)(
    last_modified(lambda request: _catalogs_loaded_at)(JavaScriptCatalog.as_view())
)

urlpatterns = [
    path("admin/", admin.site.urls),
    # The JavaScript modules' words in the reader's language (static/chat/i18n.js).
    path("jsi18n/", javascript_catalog, name="javascript_catalog"),
    # allauth's sign-in and sign-out under the names the templates use; the
    # sign-in page says "You have been signed out." (ACCOUNT_LOGOUT_REDIRECT_URL).
    path("accounts/login/", allauth_views.login, name="login"),
    path("accounts/logout/", allauth_views.logout, name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/security/", account_views.security, name="account_security"),
    # Single sign-on callback with the id_token's signature always checked
    # (before allauth's own route for the same path, which would skip it).
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        sso.callback,
        name="sso_callback",
    ),
    path("accounts/", include("allauth.urls")),
    path("", include("teams.urls")),
    path("", include("usage.urls")),
    path("", include("summaries.urls")),
    path("", include("conversations.urls")),
]
