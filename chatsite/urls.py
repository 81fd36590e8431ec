from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy
from django.utils.text import format_lazy

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    # The sign-in page says "You have been signed out." (templates/registration/login.html).
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(
            next_page=format_lazy("{}?signed_out=1", reverse_lazy("login"))
        ),
        name="logout",
    ),
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
    path("", include("usage.urls")),
    path("", include("summaries.urls")),
    path("", include("conversations.urls")),
]
