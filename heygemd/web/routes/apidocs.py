"""The API's description (/openapi.json) and its interactive page (/docs), both behind the sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from heygemd.web.access import require_sign_in

router = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)
OPENAPI_URL = "/openapi.json"


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="heygemd API")
