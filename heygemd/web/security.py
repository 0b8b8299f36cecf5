"""Who may look and who may act: the optional token, and protection of every write against cross-site requests.

Sign-in: with ``web.token`` set (or HEYGEMD_WEB__TOKEN), every page and API call needs it, either
as ``Authorization: Bearer <token>`` (scripts, Prometheus) or as the session cookie the sign-in
form sets. The cookie holds an HMAC of the token, not the token. Without a token nothing is asked:
the default address, 127.0.0.1, is then the only guard.

Cross-site requests: a write (POST) is refused when its Origin is another site's, or when it
comes from a browser (it carries an Origin, a Sec-Fetch-Site or a cookie) without the CSRF token
of this site: the value of the ``heygemd_csrf`` cookie, sent back as the ``X-CSRF-Token`` header
or the ``csrf_token`` form field (double submit). A script with a bearer token, or with no
browser marks at all, needs no CSRF token: a browser cannot send a request without an Origin
on a cross-site POST, and cannot attach a bearer token by itself.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from heygemd.web.errors import WebError
from heygemd.web.settings import WebSettings

SESSION_COOKIE = "heygemd_session"
CSRF_COOKIE = "heygemd_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def _equal(given: str | None, expected: str | None) -> bool:
    return given is not None and expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def has_valid_bearer(request: Request, settings: WebSettings) -> bool:
    return settings.token is not None and _equal(bearer(request), settings.token)


def signed_in(request: Request, settings: WebSettings) -> bool:
    if settings.token is None:
        return True
    return has_valid_bearer(request, settings) or _equal(request.cookies.get(SESSION_COOKIE), settings.session_value())


def token_matches(given: str, settings: WebSettings) -> bool:
    return _equal(given, settings.token)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_cookie(request: Request) -> str | None:
    return request.cookies.get(CSRF_COOKIE)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, settings: WebSettings) -> bool:
    """The request does not come from another site (by Origin, else by Sec-Fetch-Site)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in _SAME_SITE_FETCH
    allowed = {_origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")}
    if settings.web.public_url:
        allowed.add(_origin_of(settings.web.public_url))
    return origin.lower() in allowed


def from_browser(request: Request) -> bool:
    headers = request.headers
    return "origin" in headers or "sec-fetch-site" in headers or "cookie" in headers


class WriteRefused(WebError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(403, kind, message)


def needs_csrf_token(request: Request, settings: WebSettings) -> bool:
    """Checks what can be checked before the body is read; True if the body (or header) must bring the CSRF token."""
    if has_valid_bearer(request, settings):
        return False
    if not same_origin(request, settings):
        raise WriteRefused("csrf.cross_site", "Refused: the request comes from another site.")
    if not from_browser(request):
        return False
    return not _equal(request.headers.get(CSRF_HEADER), csrf_cookie(request))


def check_csrf_field(request: Request, submitted: str | None) -> None:
    if not _equal(submitted, csrf_cookie(request)):
        raise WriteRefused("csrf.missing", "Refused: the form is out of date or comes from another site; reload the page.")
