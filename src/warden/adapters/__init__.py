"""Adapters: Warden's clients for the services beside it (Lemmy, pict-rs, ...)."""
