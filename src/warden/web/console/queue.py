"""The review queue: pixelated thumbnails, approve, flag (preview, then result)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from warden.errors import NotFound, PageRefused
from warden.web.console.pages import (
    AdminDep,
    ConsoleDep,
    ConsoleRoute,
    ViewerDep,
    back,
    checked,
    message,
    render,
)

router = APIRouter(route_class=ConsoleRoute)


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store, private"})


@router.get("/queue")
async def queue(
    request: Request, console: ConsoleDep, who: ViewerDep, before: int | None = None
) -> Response:
    """Every open `review` decision this person may see, newest first; media a CSAM
    bank matched shows as metadata only. Where the media was posted is looked up
    first (cached), so a moderator sees the reviews of their communities."""
    await console.service.place()
    items = await asyncio.to_thread(console.service.queue, who, before)
    return render(request, "queue.html", items=items, csrf=who.csrf, **message(request, console))


@router.get("/queue/{decision_id}/thumb.png")
async def thumbnail(console: ConsoleDep, who: ViewerDep, decision_id: int) -> Response:
    """The pixelated thumbnail (made on the server; nothing recognisable survives)."""
    data = await asyncio.to_thread(console.service.thumbnail, who, decision_id)
    if data is None:
        raise NotFound("No picture for this decision.")
    return _png(data)


@router.post("/queue/{decision_id}/reveal")
async def reveal(
    request: Request,
    console: ConsoleDep,
    who: AdminDep,
    decision_id: int,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """The clear picture of this one item, because an admin asked (audited); never
    for media a CSAM bank matched."""
    checked(request, who, csrf)
    data = await console.service.clear(who, decision_id)
    if data is None:
        raise PageRefused(404, "This picture is not shown (withheld, or no longer stored).")
    return _png(data)


@router.post("/queue/{decision_id}/approve")
async def approve(
    request: Request,
    console: ConsoleDep,
    who: ViewerDep,
    decision_id: int,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Approve: the hashes go to the allow bank, the item leaves the queue."""
    checked(request, who, csrf)
    detail = await console.service.approve(who, decision_id, reason)
    return back(console, "/console/queue", notice=f"Decision {decision_id} approved: {detail}.")


@router.get("/queue/{decision_id}/flag")
async def flag_preview(
    request: Request, console: ConsoleDep, who: AdminDep, decision_id: int
) -> Response:
    """What flagging will do, before anything is done."""
    item = await asyncio.to_thread(console.service.decision, who, decision_id)
    plan = await asyncio.to_thread(console.service.chain.plan, decision_id)
    return render(request, "flag.html", item=item, plan=plan, result=None, csrf=who.csrf, reason="")


@router.post("/queue/{decision_id}/flag")
async def flag(
    request: Request,
    console: ConsoleDep,
    who: AdminDep,
    decision_id: int,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Flag in one step; the answer lists each step, what failed, and a retry."""
    checked(request, who, csrf)
    result = await console.service.flag(who, decision_id, reason)
    item = await asyncio.to_thread(console.service.decision, who, decision_id)
    status = 200 if result.ok else 502
    return render(
        request,
        "flag.html",
        status,
        item=item,
        plan=None,
        result=result,
        csrf=who.csrf,
        reason=reason,
    )
