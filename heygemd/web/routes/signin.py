"""Sign-in and sign-out, the health check and the icon: the routes open to anyone."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from heygemd.web.access import check_form_write, safe_next
from heygemd.web.security import CSRF_FIELD, SESSION_COOKIE, token_matches
from heygemd.web.site import HERE, SiteWeb

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """For the browsers and tools that ask for /favicon.ico before (or without) reading the page's icon link."""
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


@router.get("/login")
def login_page(request: Request, web: SiteWeb, next: str = "/") -> Response:
    return web.page(request, "login.html", next=safe_next(next))


@router.post("/login")
async def login(request: Request, web: SiteWeb) -> Response:
    settings = web.settings
    form = await request.form()
    check_form_write(request, settings, form.get(CSRF_FIELD))
    next_path = safe_next(str(form.get("next", "/")))
    if settings.token is None:
        return RedirectResponse(next_path, status_code=303)
    if not token_matches(str(form.get("token", "")), settings):
        t = web.translator(request)
        return web.page(request, "login.html", status=401, next=next_path, notice=t("login.wrong"), notice_kind="error")
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, settings.session_value() or "", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
    return response


@router.post("/logout")
async def logout(request: Request, web: SiteWeb) -> Response:
    form = await request.form()
    check_form_write(request, web.settings, form.get(CSRF_FIELD))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
