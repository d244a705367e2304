"""Warden: the safety layer Lemmy admins run beside Lemmy and pict-rs."""

__version__ = "0.1.0"
