"""Warden's Lemmy client: API v3 (Lemmy 0.19.x) and v4 (Lemmy 1.0) behind one interface."""

from warden.adapters.lemmy.client import AutoLemmy, LemmyApi, build_lemmy
from warden.adapters.lemmy.identity import Identity
from warden.adapters.lemmy.v3 import LemmyV3
from warden.adapters.lemmy.v4 import LemmyV4

__all__ = ["AutoLemmy", "Identity", "LemmyApi", "LemmyV3", "LemmyV4", "build_lemmy"]
