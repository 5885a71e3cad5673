"""The interactive API docs, served whole by the service.

FastAPI's own docs page loads Swagger UI's script and stylesheet from a CDN, so offline (or
behind a firewall) it is blank. Here the page names only this service: the assets are the copy
of Swagger UI that the ``fastapi-offline`` package vendors (a pinned runtime requirement), served
from ``/api/docs/assets/``, and Swagger UI's online validator badge is off.

The docs, their assets and ``/api/openapi.json`` need no token: the spec holds no secret, and a
caller needs its bearer token for every data route anyway (the page's "Authorize" button takes
it).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_PATH = "/api/docs"
ASSETS_PATH = "/api/docs/assets"
# fastapi-offline ships Swagger UI (swagger-ui-bundle.js, swagger-ui.css), ReDoc and a favicon
# in its package folder "static".
_VENDORED = ("fastapi_offline", "static")


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/api/docs`` from assets under ``/api/docs/assets/``.

    The app must be created with ``docs_url=None`` (FastAPI's page would load the CDN's copy).
    """
    app.mount(ASSETS_PATH, StaticFiles(packages=[_VENDORED]), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        assert app.openapi_url is not None
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title}: API docs",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,
            # Swagger UI would otherwise send the spec's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
