"""Which Lemmy API requests are which activity, for both API versions.

nginx tells `/authz` the original method and URI; this table turns them into
an `Activity` (or None: the request is not one Warden rules on). Paths follow
lemmy-js-client: 0.19.9 uploads through `POST /pictrs/image` (avatars and
banners too); 1.0.0-beta.2 has `POST /api/v4/image` plus dedicated avatar,
banner and icon uploads, and invites at `POST /api/v4/account/invite`.

The URI is normalised first (query dropped, percent-decoding, `//`, `.` and
`..` resolved, trailing slash removed) so a disguised path cannot slip past.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from warden.membership.requirements import Activity

_POST: dict[str, Activity] = {
    # API v3 (Lemmy 0.19.x)
    "/pictrs/image": Activity.UPLOAD_IMAGE,
    "/api/v3/community": Activity.CREATE_COMMUNITY,
    "/api/v3/private_message": Activity.SEND_PRIVATE_MESSAGE,
    "/api/v3/post": Activity.CREATE_POST,
    "/api/v3/comment": Activity.CREATE_COMMENT,
    # API v4 (Lemmy 1.0)
    "/api/v4/image": Activity.UPLOAD_IMAGE,
    "/api/v4/account/avatar": Activity.UPLOAD_IMAGE,
    "/api/v4/account/banner": Activity.UPLOAD_IMAGE,
    "/api/v4/community/icon": Activity.UPLOAD_IMAGE,
    "/api/v4/community/banner": Activity.UPLOAD_IMAGE,
    "/api/v4/site/icon": Activity.UPLOAD_IMAGE,
    "/api/v4/site/banner": Activity.UPLOAD_IMAGE,
    "/api/v4/community": Activity.CREATE_COMMUNITY,
    "/api/v4/private_message": Activity.SEND_PRIVATE_MESSAGE,
    "/api/v4/post": Activity.CREATE_POST,
    "/api/v4/comment": Activity.CREATE_COMMENT,
    "/api/v4/account/invite": Activity.CREATE_INVITE,
}


def normalise_path(uri: str) -> str:
    """The path of `uri` as a router would see it."""
    path = unquote(uri.split("?", 1)[0].split("#", 1)[0]) or "/"
    return posixpath.normpath("/" + path.lstrip("/")).replace("//", "/")


def activity_for(method: str, uri: str) -> Activity | None:
    """The activity a request performs, or None when Warden does not rule on it."""
    if method.upper() != "POST":
        return None
    return _POST.get(normalise_path(uri))
