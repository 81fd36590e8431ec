"""The sign-in forms: allauth's for the site, and the admin's through the same throttle."""

from __future__ import annotations

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.forms import LoginForm
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError


class SignInForm(LoginForm):
    """allauth's sign-in form, which also takes the field `username` (what the
    page, password managers and scripts have always posted) for its `login`."""

    def __init__(self, *args, **kwargs) -> None:
        data = kwargs.get("data")
        if data is not None and "login" not in data and "username" in data:
            data = data.copy()
            data["login"] = data["username"]
            kwargs["data"] = data
        super().__init__(*args, **kwargs)


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in, checked through allauth's adapter: the same counters
    of failed attempts per account and per address as /accounts/login/, so the
    admin page is no way around them."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            adapter = get_account_adapter(self.request)
            try:
                self.user_cache = adapter.authenticate(
                    self.request, username=username, password=password
                )
            except ValidationError as error:
                raise ValidationError(error.messages, code="too_many_login_attempts") from None
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
