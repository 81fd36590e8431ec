from allauth.account import views as allauth_views
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import sso
from accounts import views as account_views

urlpatterns = [
    path("admin/", admin.site.urls),
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
