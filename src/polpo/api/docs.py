"""``/api/v1/docs``: Swagger UI served from this machine, under the strict CSP.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an
inline script: blank offline, and blocked by our Content-Security-Policy.
Here the assets come from the ``fastapi-offline`` package (a Swagger UI 5
build, which reads OpenAPI 3.1) and the start-up code is ``static/docs.js``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

#: Where the Swagger UI files are mounted (public, like the dashboard's own files).
SWAGGER_STATIC = "/static/swagger"

DOCS_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Polpo — API docs</title>
<link rel="stylesheet" href="{SWAGGER_STATIC}/swagger-ui.css">
<link rel="icon" href="{SWAGGER_STATIC}/favicon.png">
</head><body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_STATIC}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>
"""


def swagger_assets() -> Path | None:
    """The folder holding ``swagger-ui-bundle.js`` and ``swagger-ui.css``, if installed."""
    try:
        folder = Path(str(importlib.resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


@router.get("/api/v1/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE, headers={"Cache-Control": "no-store"})
