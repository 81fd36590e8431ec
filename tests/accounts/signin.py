"""What the sign-in tests share."""

import base64
import hashlib
import hmac
import struct
import time

PASSWORD = "pw-for-tests-123"  # tests/conftest.py's `world`


def sign_in(client, login: str, password: str = PASSWORD, *, ip: str = "10.1.2.3", path="/accounts/login/"):
    """Post the sign-in page's form as the browser does."""
    return client.post(path, {"username": login, "password": password}, REMOTE_ADDR=ip)


def totp_code(secret: str, *, at: float | None = None, period: int = 30) -> str:
    """RFC 6238 (HMAC-SHA1, six digits) from the base32 secret, as an authenticator app."""
    counter = int((time.time() if at is None else at) // period)
    digest = hmac.new(
        base64.b32decode(secret, casefold=True), struct.pack(">Q", counter), hashlib.sha1
    ).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"
