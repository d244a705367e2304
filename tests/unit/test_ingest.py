"""Which pict-rs requests ingest media, and how the tracker attributes an ingest."""

from __future__ import annotations

from warden.adapters.pictrs_proxy import IngestTracker, ingest_kind


def test_ingest_kinds():
    assert ingest_kind("POST", "image") == "upload"
    assert ingest_kind("POST", "/image/backgrounded") == "upload"
    assert ingest_kind("GET", "image/download", {"url": "https://x/y.jpg"}) == "remote"
    assert ingest_kind("GET", "image/original", {"proxy": "https://x/y.jpg"}) == "remote"
    assert ingest_kind("GET", "image/process.webp", {"proxy": "u", "thumbnail": "256"}) == "remote"
    assert ingest_kind("GET", "image/original/abc.png") is None
    assert ingest_kind("DELETE", "image/delete/t/abc.png") is None
    assert ingest_kind("POST", "internal/purge") is None


def test_tracker_attributes_only_when_one_kind_runs():
    tracker = IngestTracker()
    assert tracker.source() == "ingest"
    with tracker.running("upload"):
        assert tracker.source() == "upload"
        with tracker.running("remote"):
            assert tracker.source() == "ingest"
        assert tracker.source() == "upload"
    with tracker.running("remote"), tracker.running("remote"):
        assert tracker.source() == "remote"
    assert tracker.source() == "ingest"
