"""A small OpenID Connect provider for tests, served on 127.0.0.1 by a thread.

It speaks the authorization-code flow as Google, Entra ID, Okta or Keycloak do:
a discovery document, a JWKS, an authorize endpoint that redirects back with a
code (the person is "signed in" as `claims`), a token endpoint that checks the
client's secret, the code's redirect URI and its PKCE verifier and returns an
RS256 id_token signed with a test key (joserfc), and a userinfo endpoint.

Knobs for what a hostile or misconfigured provider does: `forge_signature`
signs the id_token with a key the JWKS does not publish (under the published
kid), `audience` names another client in it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

KID = "test-key-1"


def _rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KID, "alg": "RS256", "use": "sig"})


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    claims: dict


@dataclass
class LocalOpenIDProvider:
    client_id: str
    client_secret: str
    claims: dict = field(default_factory=dict)
    forge_signature: bool = False
    audience: str | None = None
    key: RSAKey = field(default_factory=_rsa_key)
    other_key: RSAKey = field(default_factory=_rsa_key)
    token_requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, dict] = {}
        self._server: ThreadingHTTPServer | None = None

    # --- running ------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> LocalOpenIDProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                provider._handle(self, "GET")

            def do_POST(self) -> None:
                provider._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the endpoints ---------------------------------------------------------------

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email"],
        }

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
        else:
            form = {}
        routes = {
            ("GET", "/.well-known/openid-configuration"): lambda: (200, self.discovery()),
            ("GET", "/jwks"): lambda: (200, {"keys": [self.key.as_dict(private=False)]}),
            ("GET", "/authorize"): lambda: self._authorize(query),
            ("POST", "/token"): lambda: self._token(form, handler.headers.get("Authorization")),
            ("GET", "/userinfo"): lambda: self._userinfo(handler.headers.get("Authorization")),
        }
        route = routes.get((method, url.path))
        status, body = route() if route else (404, {"error": "not_found"})
        if status == 302:
            handler.send_response(302)
            handler.send_header("Location", body)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authorize(self, query: dict) -> tuple[int, object]:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {"error": "unauthorized_client"}
        if "openid" not in query.get("scope", "").split():
            return 400, {"error": "invalid_scope"}
        code = secrets.token_urlsafe(16)
        self._grants[code] = _Grant(
            client_id=query["client_id"],
            redirect_uri=query["redirect_uri"],
            code_challenge=query.get("code_challenge", ""),
            claims=dict(self.claims),
        )
        back = {"code": code}
        if "state" in query:
            back["state"] = query["state"]
        return 302, f"{query['redirect_uri']}?{urlencode(back)}"

    def _client_credentials(self, form: dict, authorization: str | None) -> tuple[str, str]:
        if authorization and authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            return client_id, secret
        return form.get("client_id", ""), form.get("client_secret", "")

    def _token(self, form: dict, authorization: str | None) -> tuple[int, object]:
        self.token_requests.append(dict(form))
        client_id, secret = self._client_credentials(form, authorization)
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = self._grants.pop(form.get("code", ""), None)  # single use
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.redirect_uri != form.get("redirect_uri")
        ):
            return 400, {"error": "invalid_grant"}
        if grant.code_challenge:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if expected != grant.code_challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        access_token = secrets.token_urlsafe(24)
        self._tokens[access_token] = grant.claims
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": self.id_token(grant.claims),
        }

    def id_token(self, claims: dict) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience or self.client_id,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
            **claims,
        }
        key = self.other_key if self.forge_signature else self.key
        return jwt.encode({"alg": "RS256", "kid": KID, "typ": "JWT"}, payload, key)

    def _userinfo(self, authorization: str | None) -> tuple[int, object]:
        token = (authorization or "").removeprefix("Bearer ")
        claims = self._tokens.get(token)
        if claims is None:
            return 401, {"error": "invalid_token"}
        return 200, claims
