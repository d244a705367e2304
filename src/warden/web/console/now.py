"""The Now page and the uploads switch (admins only)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from warden.web.console.pages import (
    AdminDep,
    ConsoleDep,
    ConsoleRoute,
    back,
    checked,
    message,
    render,
)

router = APIRouter(route_class=ConsoleRoute)
SWITCHES = ("on", "off", "admins", "moderators")


@router.get("/now")
async def now(request: Request, console: ConsoleDep, who: AdminDep) -> Response:
    """Decisions per minute by outcome and source, top refusal reasons, recent
    refusals, the uploads switch, banks, evidence, and doctor's findings."""
    uploads, from_console = console.service.uploads()
    view = await asyncio.to_thread(console.service.now_reader.read, uploads, from_console)
    return render(
        request,
        "now.html",
        view=view,
        switches=SWITCHES,
        csrf=who.csrf,
        **message(request, console),
    )


@router.post("/switch")
async def switch(
    request: Request,
    console: ConsoleDep,
    who: AdminDep,
    csrf: Annotated[str, Form()] = "",
    uploads: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Flip the uploads switch: /authz answers by it from its next request on (this
    process), a restart restores it, and the change is audited."""
    checked(request, who, csrf)
    await console.service.set_switch(who, uploads, reason)
    return back(console, "/console/now", notice=f"Uploads are now: {uploads}.")
