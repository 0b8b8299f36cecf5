"""/metrics: the services' counters in Prometheus's text format, behind the sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from heygemd.web.access import require_sign_in
from heygemd.web.site import SiteWeb

router = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)


@router.get("/metrics")
def metrics(web: SiteWeb) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(web.registry), media_type=CONTENT_TYPE_LATEST)
