"""The API's description (/openapi.json) and its interactive page (/docs), both behind the sign-in.

The page is Swagger UI from the swagger-ui-bundle-v2 package, its files served here (ASSETS_URL): it works
with no internet, and under the site's own Content-Security-Policy (its start-up is static/apidocs.js).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from heygemd.web.access import require_sign_in
from heygemd.web.site import SiteWeb

router = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)
OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs/assets"


def swagger_assets() -> StaticFiles:
    """Swagger UI's dist files (mounted at ASSETS_URL by create_app)."""
    return StaticFiles(directory=str(swagger_ui_path))


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(request: Request, web: SiteWeb) -> Response:
    return web.page(request, "apidocs.html", assets=ASSETS_URL, openapi_url=OPENAPI_URL)
