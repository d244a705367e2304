"""`/console`: the incident console, server-rendered, every action a plain form.

Served on the main (internal) listener only, never on the public one; admins
reach it through an SSH tunnel or an nginx location with an allow-list
(docs/console.md). The pages are thin: each calls services/console.py.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from warden.web.console import now, people, queue, signin
from warden.web.console.pages import HERE, ConsoleRoute, headers

router = APIRouter(tags=["console"], include_in_schema=False)
_CSS = (HERE / "static" / "console.css").read_bytes


@router.get("/console/static/console.css", include_in_schema=False)
async def stylesheet() -> Response:
    """The console's one stylesheet (the CSP allows styles from Warden only)."""
    return headers(
        Response(_CSS(), media_type="text/css", headers={"Cache-Control": "max-age=300"})
    )


for part in (signin.router, now.router, queue.router, people.router):
    router.include_router(part, prefix="/console")

__all__ = ["ConsoleRoute", "router"]
