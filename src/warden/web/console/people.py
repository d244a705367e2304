"""People (uploads, decisions, invite tree, strikes, ban-subtree) and evidence."""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from warden.errors import NotFound
from warden.web.console.pages import (
    AdminDep,
    ConsoleDep,
    ConsoleRoute,
    checked,
    message,
    render,
)

router = APIRouter(route_class=ConsoleRoute)


@router.get("/people")
async def people(request: Request, console: ConsoleDep, who: AdminDep, name: str = "") -> Response:
    """An account's decisions, its place in the invite tree and its strikes."""
    view = await asyncio.to_thread(console.service.person, name) if name.strip() else None
    return render(
        request,
        "people.html",
        view=view,
        name=name,
        csrf=who.csrf,
        preview=None,
        **message(request, console),
    )


@router.post("/people/ban-subtree")
async def ban_subtree(
    request: Request,
    console: ConsoleDep,
    who: AdminDep,
    csrf: Annotated[str, Form()] = "",
    name: Annotated[str, Form(max_length=255)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Without `confirm`: the preview (who would be banned). With it: the bans,
    each through Lemmy with content removed, each inviter struck."""
    checked(request, who, csrf)
    view = await asyncio.to_thread(console.service.person, name)
    if confirm != "yes":
        todo = [n for n in view.subtree if not n.banned]
        return render(
            request, "people.html", view=view, name=name, csrf=who.csrf, preview=todo, reason=reason
        )
    banned, errors = await console.service.ban_subtree(who, name, reason)
    view = await asyncio.to_thread(console.service.person, name)
    return render(
        request,
        "people.html",
        200 if not errors else 502,
        view=view,
        name=name,
        csrf=who.csrf,
        preview=None,
        banned=banned,
        errors=errors,
    )


@router.get("/evidence")
async def evidence(request: Request, console: ConsoleDep, who: AdminDep) -> Response:
    """Preserved evidence: metadata only (no picture of it is ever shown here)."""
    items = await asyncio.to_thread(console.service.evidence_items)
    return render(request, "evidence.html", items=items, csrf=who.csrf, exported=None)


@router.post("/evidence/{item_id}/export")
async def export(
    request: Request,
    console: ConsoleDep,
    who: AdminDep,
    item_id: str,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Write the hotline package; the one-time key is shown once, on this answer."""
    checked(request, who, csrf)
    exported = await console.service.export(who, item_id)
    items = await asyncio.to_thread(console.service.evidence_items)
    return render(request, "evidence.html", items=items, csrf=who.csrf, exported=exported)


@router.get("/exports/{stamp}/{item_id}.zip")
async def download(console: ConsoleDep, who: AdminDep, stamp: str, item_id: str) -> Response:
    """An exported package as one zip (metadata, CyberTipline fields, encrypted file)."""
    root = console.service.exports_dir()
    folder = (root / stamp / item_id).resolve()
    if root.resolve() not in folder.parents or not folder.is_dir():
        raise NotFound("No such export.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{item_id}/{path.name}")
    return Response(
        buf.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{item_id}.zip"'},
    )
