"""`warden rescan` over a folder store and a real S3 protocol server (moto), pool and Ray."""

from __future__ import annotations

import json

import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from tests.conftest import encode, gradient
from tests.servers.nginx import free_port
from warden.cli import app
from warden.config import LabelThreshold, load_settings
from warden.jobs.rescan import StoreSpec, list_keys, run_rescan, scan_with_pool
from warden.store.rescan_ledger import RescanLedger


@pytest.fixture
def store(tmp_path, astronaut):
    """A pict-rs-like files folder: nested, ordinary pictures, one face, one broken file."""
    root = tmp_path / "files"
    for i in range(10):
        sub = root / f"{i % 3:03}" / f"{i:03}"
        sub.mkdir(parents=True)
        (sub / f"img{i}").write_bytes(
            encode(gradient(200, 150, seed=i), "PNG" if i % 2 else "JPEG")
        )
    (root / "000" / "face").write_bytes(encode(astronaut))
    (root / "000" / "broken").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


@pytest.fixture
def face_rejecting(tmp_path):
    settings = load_settings(None, data_dir=tmp_path / "data")
    settings.policy.labels["FACE_FEMALE"] = LabelThreshold(reject=0.5)
    return settings


def _expected(decisions):
    assert decisions["000/face"] == "reject"
    assert decisions["000/broken"] == "reject"
    assert sum(d == "accept" for d in decisions.values()) == 10


def test_pool_and_single_process_agree(store, face_rejecting):
    spec = StoreSpec(folder=str(store))
    keys = list(list_keys(spec))
    assert len(keys) == 12
    single = {r.key: (r.decision, r.reasons) for r in scan_with_pool(face_rejecting, spec, keys, 1)}
    pooled = {r.key: (r.decision, r.reasons) for r in scan_with_pool(face_rejecting, spec, keys, 2)}
    assert single == pooled
    _expected({k: d for k, (d, _) in single.items()})


def test_rescan_resumes_from_its_ledger(store, face_rejecting, tmp_path):
    spec = StoreSpec(folder=str(store))
    ledger = RescanLedger(tmp_path / "ledger.sqlite")
    first = run_rescan(face_rejecting, spec, ledger, workers=1)
    assert sum(first.values()) == 12
    (store / "000" / "new").write_bytes(encode(gradient(seed=99)))
    second = run_rescan(face_rejecting, spec, ledger, workers=1)
    assert second == {"accept": 1}  # only the new object was scanned
    _expected({k: d for k, d in ledger.decisions().items() if k != "000/new"})


@pytest.mark.slow
def test_ray_local_mode_gives_the_same_decisions_as_the_pool(store, face_rejecting, tmp_path):
    import ray

    spec = StoreSpec(folder=str(store))
    pool_ledger = RescanLedger(tmp_path / "pool.sqlite")
    ray_ledger = RescanLedger(tmp_path / "ray.sqlite")
    run_rescan(face_rejecting, spec, pool_ledger, workers=2)
    try:
        run_rescan(face_rejecting, spec, ray_ledger, workers=2, ray_address="local")
    finally:
        ray.shutdown()
    assert ray_ledger.decisions() == pool_ledger.decisions()


@pytest.fixture
def s3(store, monkeypatch):
    import boto3

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="pictrs")
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        client.put_object(
            Bucket="pictrs", Key=f"files/{path.relative_to(store)}", Body=path.read_bytes()
        )
    yield endpoint
    server.stop()


def test_rescan_of_an_s3_store_through_the_cli(s3, tmp_path):
    env = {
        "WARDEN_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_POLICY__LABELS": json.dumps({"FACE_FEMALE": {"reject": 0.5}}),
    }
    args = [
        "rescan",
        "--s3-bucket",
        "pictrs",
        "--s3-prefix",
        "files/",
        "--s3-endpoint",
        s3,
        "--json",
        "-w",
        "1",
    ]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1, result.output
    rows = {r["key"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert len(rows) == 12
    _expected({k.removeprefix("files/"): r["decision"] for k, r in rows.items()})
    again = CliRunner().invoke(app, args, env=env)
    assert again.stdout == ""  # resumed: nothing left to scan


def test_rescan_needs_exactly_one_store(tmp_path):
    result = CliRunner().invoke(app, ["rescan"], env={"WARDEN_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "exactly one" in result.output
