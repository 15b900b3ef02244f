"""The web app's assets beside its pages: the API's documentation served offline, the favicon,
and the front-end libraries vendored into ``static/vendor/`` by ``make vendor``.

The libraries come from the npm registry at build time (the Makefile pins their versions) and
are never fetched from a CDN at run time, so every page and ``/docs`` work without internet. A
development install without them still starts: ``/docs`` then says how to get them, and the
dashboard draws a plain table instead of the chart and the map.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

#: Where the pages find the vendored files (the app mounts ``static/`` at ``/static``).
VENDOR_URL = "/static/vendor"
#: The favicon, a small SVG (browsers ask for /favicon.ico whatever the pages link).
FAVICON = "favicon.svg"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"


def static_dir() -> Traversable:
    """The package's ``static/`` folder (pages' scripts, stylesheet, favicon, vendor/)."""
    return resources.files("evtrade.service").joinpath("static")


def vendored(name: str) -> bool:
    """True when ``make vendor`` put ``name`` into ``static/vendor/``."""
    return static_dir().joinpath("vendor", name).is_file()


def docs_page(openapi_url: str, title: str) -> HTMLResponse:
    """Swagger UI for the OpenAPI schema at ``openapi_url``, from the vendored swagger-ui-dist."""
    title = escape(title)
    if not (vendored(SWAGGER_JS) and vendored(SWAGGER_CSS)):
        return HTMLResponse(
            f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title}: API</title><link rel="icon" href="/favicon.ico" type="image/svg+xml"></head>
<body><h1>{title}</h1><p>Swagger UI is not installed in this copy of the service (run
<code>make vendor</code>). The API's schema is at <a href="{openapi_url}">{openapi_url}</a>.</p>
</body></html>"""
        )
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title}: API",
        swagger_js_url=f"{VENDOR_URL}/{SWAGGER_JS}",
        swagger_css_url=f"{VENDOR_URL}/{SWAGGER_CSS}",
        swagger_favicon_url="/favicon.ico",
        # No badge from validator.swagger.io: nothing leaves this page.
        # No deep links: Swagger UI nests them in each operation's button (axe-core's
        # nested-interactive); docs.css gives its badges and links enough contrast.
        swagger_ui_parameters={"validatorUrl": None, "deepLinking": False},
    )
    html = bytes(page.body).decode().replace("<html>", '<html lang="en">', 1)
    html = html.replace("</head>", '<link rel="stylesheet" href="/static/docs.css"></head>', 1)
    return HTMLResponse(html)
