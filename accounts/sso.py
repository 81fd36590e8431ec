"""OpenID Connect single sign-on through allauth's `openid_connect` provider,
with one change: the id_token's signature is always checked against the
provider's published keys.

allauth skips that check for an id_token that came straight from the token
endpoint (OpenID Connect Core 3.1.3.7 allows it over TLS); checking it costs one
fetch of the JWKS per sign-in and refuses a token no key of the provider signed,
whatever carried it.
"""

from __future__ import annotations

from allauth.account.internal.decorators import login_not_required
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.http import Http404


class SignatureCheckingOpenIDConnectAdapter(OpenIDConnectOAuth2Adapter):
    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict:
        return jwtkit.verify_and_decode(
            credential=id_token,
            keys_url=self.openid_config["jwks_uri"],
            issuer=self.openid_config["issuer"],
            audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=True,
        )


@login_not_required
def callback(request, provider_id: str):
    """allauth's callback view for the provider, with the adapter above."""
    try:
        view = OAuth2CallbackView.adapter_view(
            SignatureCheckingOpenIDConnectAdapter(request, provider_id)
        )
        return view(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None
