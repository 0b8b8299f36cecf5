"""Who may do what: the sign-in every page and API route asks for, and the cross-site check on writes."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from heygemd.web.errors import WebError
from heygemd.web.security import WriteRefused, check_csrf_field, needs_csrf_token, signed_in
from heygemd.web.settings import WebSettings
from heygemd.web.site import settings_of, wants_json


class SignInNeeded(Exception):
    """A page asked for without signing in: answered by a redirect to the sign-in page, back here after."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def require_sign_in(request: Request) -> None:
    """The dependency of every route but sign-in's: an API call is refused (401), a page goes to /login."""
    if signed_in(request, settings_of(request)):
        return
    if wants_json(request) or request.method != "GET":
        raise WebError(401, "auth.required", "Sign in first (the page's password, or an Authorization: Bearer token).")
    raise SignInNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))


async def to_sign_in(request: Request, error: Exception) -> Response:
    next_path = error.next_path if isinstance(error, SignInNeeded) else "/"
    return RedirectResponse(f"/login?next={quote(next_path, safe='')}", status_code=303)


def safe_next(target: str) -> str:
    """Only a path of this site (never //other.site or a scheme) after signing in."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def check_form_write(request: Request, settings: WebSettings, submitted: object) -> None:
    if needs_csrf_token(request, settings):
        check_csrf_field(request, submitted if isinstance(submitted, str) else None)


def check_api_write(request: Request, settings: WebSettings) -> None:
    if needs_csrf_token(request, settings):
        raise WriteRefused("csrf.missing", "Refused: the form is out of date or comes from another site; reload the page.")
