"""Security headers on every HTTP answer, so no other site can frame or restyle the page.

The run page has Cancel and Delete buttons: framed by another site, a click there could
be stolen (clickjacking), so every answer forbids framing (`frame-ancestors 'none'`, and
`X-Frame-Options: DENY` for older browsers). The page's own scripts and styles are files
served from `/ui/static` and it builds the DOM from text, so its policy allows only
`'self'` and no inline code: a value a user wrote that slipped into the markup could not
run. JSON answers get `default-src 'none'` (a browser that renders one runs nothing) and
`nosniff`, so no answer is ever read as another type than it says.

/docs is FastAPI's Swagger page, which starts itself with an inline script: it gets the
same framing and sniffing rules but no `script-src`, rather than a hash of a script
FastAPI may change in any release.

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware: it only adds headers
to `http.response.start`, so streamed answers (server-sent events) pass untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_POLICY = "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def policy_for(path: str) -> str:
    """The Content-Security-Policy of the answer to `path`."""
    if path == "/ui" or path.startswith("/ui/"):
        return PAGE_POLICY
    if path == "/docs" or path.startswith("/docs/"):
        return DOCS_POLICY
    return API_POLICY


class SecurityHeaders:
    """Adds ALWAYS and the path's policy to every HTTP answer that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = policy_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**ALWAYS, "Content-Security-Policy": policy}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
