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
    both = ["rescan", "--pictrs", "--folder", str(tmp_path)]
    result = CliRunner().invoke(app, both, env={"WARDEN_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "exactly one" in result.output


@pytest.mark.parametrize("pictrs_version", ["0.4", "0.5.6", "0.5.7"])
def test_rescan_logs_preserves_and_purges_what_it_refuses(
    store, tmp_path, ordinary_images, pictrs_version
):
    """The gate's side effects, for stored media: decisions logged (source `rescan`),
    a bank match recognised, evidence kept for label and hash refusals, and with
    --purge exactly those purged through pict-rs (not the undecodable file, not
    accepted ones), once, even when the command runs again. On pict-rs 0.5 the
    refused files are found by content in pict-rs's own listing, including one
    no Lemmy row references (`orphan-coffee`, a byte-identical second alias of
    the same file); on 0.4, which cannot list, through the aliases Lemmy knows."""
    import sqlite3

    from tests.servers.pictrs_internal import PictrsInternalDouble
    from warden.store.database import Database
    from warden.store.decisions import DecisionLog
    from warden.store.quarantine import generate_key, open_evidence_store

    (store / "001" / "coffee").write_bytes(encode(ordinary_images["coffee"]))
    lemmy_path = tmp_path / "lemmy.sqlite"
    with sqlite3.connect(lemmy_path) as conn:  # Lemmy 0.19.5's shape, the columns read here
        conn.execute(
            "CREATE TABLE local_image (local_user_id INTEGER, pictrs_alias TEXT PRIMARY KEY)"
        )
        conn.execute("CREATE TABLE post (id INTEGER PRIMARY KEY, thumbnail_url TEXT)")
        conn.executemany(
            "INSERT INTO local_image VALUES (1, ?)", [("a-face.png",), ("a-img1.png",)]
        )
        conn.executemany(
            "INSERT INTO post (thumbnail_url) VALUES (?)",
            [
                ("https://lemmy.example/pictrs/image/r-coffee.jpeg",),
                ("https://lemmy.example/pictrs/image/r-broken.jpeg",),
            ],
        )
    stored = {  # pict-rs paths are relative to its store root, which holds files/
        "a-face.png": "files/000/face",
        "a-img1.png": "files/001/001/img1",
        "r-coffee.jpeg": "files/001/coffee",
        "r-broken.jpeg": "files/000/broken",
    }
    key = generate_key()
    env = {
        "WARDEN_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_POLICY__LABELS": json.dumps({"FACE_FEMALE": {"reject": 0.5}}),
        "WARDEN_EVIDENCE__KEY": key,
        "WARDEN_FEDERATED__LEMMY_DATABASE_URL": f"sqlite:///{lemmy_path}",
        "WARDEN_FEDERATED__LOCAL_HOSTS": '["lemmy.example"]',
        "WARDEN_FEDERATED__PURGE_RATE": "0",
        "WARDEN_PICTRS__API_KEY": "pictrs-key",
    }
    runner = CliRunner()
    flagged = runner.invoke(app, ["flag", str(store / "001" / "coffee")], env=env)
    assert flagged.exit_code == 0, flagged.output

    with PictrsInternalDouble(version=pictrs_version) as pictrs:
        for alias, path in stored.items():
            data = (store / path.removeprefix("files/")).read_bytes()
            pictrs.add(data, alias, identifier=path)
        if pictrs_version != "0.4":  # the same bytes fetched again, under an alias Lemmy lost
            pictrs.add((store / "000" / "face").read_bytes(), "orphan-face.png")
            del env["WARDEN_FEDERATED__LEMMY_DATABASE_URL"]  # not needed: pict-rs lists
        env["WARDEN_PICTRS__URL"] = pictrs.url
        args = ["rescan", "--folder", str(store), "--purge", "--yes", "-w", "1"]
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 1, result.output
        assert sum(pictrs.purge_calls.values()) == 2
        assert set(pictrs.purge_calls) <= {"a-face.png", "orphan-face.png", "r-coffee.jpeg"}
        assert pictrs.aliases == {"a-img1.png", "r-broken.jpeg"}
        again = runner.invoke(app, args, env=env)
        assert "nothing refused left to purge" in again.output
        assert sum(pictrs.purge_calls.values()) == 2

    database = Database(f"sqlite:///{tmp_path / 'data' / 'warden.db'}")
    records = DecisionLog(database).recent(limit=50)
    database.dispose()
    assert len(records) == 13 and {r.source for r in records} == {"rescan"}
    refused = {r.verdict.sha256: r for r in records if r.verdict.decision.value == "reject"}
    assert len(refused) == 3  # the face, the bank match, the broken file
    evidence = open_evidence_store(tmp_path / "data", key, 365)
    kept = {item.metadata["store_key"]: item.metadata for item in evidence.items()}
    assert set(kept) == {"000/face", "001/coffee"}
    assert {r["code"] for r in kept["001/coffee"]["reasons"]} == {"hash_match"}
    # the plain PDQ, the SHA-256 and Warden's own robust hashes (`<bank>-warden`, issue 16)
    assert {m["bank"] for m in kept["001/coffee"]["matches"]} == {
        "local-confirmed",
        "local-confirmed-sha256",
        "local-confirmed-warden",
    }
    assert kept["000/face"]["reasons"][0]["code"] == "label_reject"
    for meta in kept.values():
        assert refused[meta["sha256"]].evidence_id == meta["evidence_id"]


@pytest.mark.parametrize("pictrs_version", ["0.4", "0.5.6", "0.5.7"])
def test_rescan_through_pictrs_reads_every_stored_file(store, tmp_path, pictrs_version):
    """pict-rs 0.5 lists every stored file once (`/internal/hashes`), referenced by Lemmy
    or not, and serves its bytes: no store access needed. pict-rs 0.4 cannot list:
    a clear refusal."""
    from tests.servers.pictrs_internal import PictrsInternalDouble

    env = {
        "WARDEN_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_POLICY__LABELS": json.dumps({"FACE_FEMALE": {"reject": 0.5}}),
        "WARDEN_PICTRS__API_KEY": "pictrs-key",
    }
    with PictrsInternalDouble(version=pictrs_version) as pictrs:
        paths = sorted(p for p in store.rglob("*") if p.is_file())
        for path in paths:
            pictrs.add(path.read_bytes(), f"{path.name}.bin")
        pictrs.add((store / "000" / "face").read_bytes(), "face-again.png")  # same file
        env["WARDEN_PICTRS__URL"] = pictrs.url
        args = ["rescan", "--pictrs", "--json", "-w", "1"]
        result = CliRunner().invoke(app, args, env=env)
        if pictrs_version == "0.4":
            assert result.exit_code == 2
            assert "/internal/hashes" in result.output
            return
        assert result.exit_code == 1, result.output
        rows = {r["key"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert len(rows) == len(paths) == 12  # one row per stored file, not per alias
    decisions = {k: r["decision"] for k, r in rows.items()}
    assert decisions["face.bin"] == "reject" and decisions["broken.bin"] == "reject"
    assert sum(d == "accept" for d in decisions.values()) == 10


def _refused_result(key: str = "000/face"):
    from warden.domain.verdict import Decision, Reason, Verdict
    from warden.jobs.rescan import RescanResult

    verdict = Verdict(
        Decision.REJECT,
        (Reason("label_reject", "FACE_FEMALE 0.73 >= 0.5", {"label": "FACE_FEMALE"}),),
        sha256="ab" * 32,
        size=6,
    )
    return RescanResult(key, "reject", ("label_reject",), verdict.sha256, verdict, b"pixels")


def test_rescan_records_like_the_gate_evidence_first_and_a_failed_write_names_none(tmp_path):
    """The shared recorder: a rescan's evidence is written before its row, and when
    the evidence cannot be written the row says `evidence_error` and names no file
    (before, the row was written first and kept an id that pointed at nothing)."""
    from warden.jobs.rescan import RescanRecorder
    from warden.store.database import Database
    from warden.store.decisions import DecisionLog
    from warden.store.quarantine import generate_key, open_evidence_store

    database = Database(f"sqlite:///{tmp_path / 'warden.db'}")
    database.upgrade()
    evidence = open_evidence_store(tmp_path / "data", generate_key(), 365)
    recorder = RescanRecorder(DecisionLog(database), evidence, "v1")
    kept = recorder(_refused_result("000/face"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    evidence.root = blocker  # every write into it fails
    lost = recorder(_refused_result("000/other"))
    rows = {r.id: r for r in DecisionLog(database).recent()}
    database.dispose()
    assert kept is not None and kept.logged and kept.evidence_id is not None
    assert rows[kept.decision_id].evidence_id == kept.evidence_id
    evidence.root = tmp_path / "data" / "evidence"
    assert evidence.show(kept.evidence_id).metadata["store_key"] == "000/face"
    assert lost is not None and lost.logged and lost.evidence_id is None
    assert rows[lost.decision_id].evidence_id is None
    assert rows[lost.decision_id].verdict.codes == ["label_reject", "evidence_error"]
    assert recorder.evidence_errors == 1


def test_a_rescan_whose_row_cannot_be_written_keeps_the_key_for_the_next_run(tmp_path):
    """Under the `rescan` failure mode (closed) a failed row write is a refusal with
    `store_error`, as at the gate; the ledger does not mark the key scanned, so the
    next run scans it again rather than losing its decision."""
    from warden.jobs.rescan import RescanRecorder
    from warden.store.database import Database
    from warden.store.decisions import DecisionLog

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "plain").write_bytes(encode(gradient(200, 150)))
    settings = load_settings(None, data_dir=tmp_path / "data")
    broken = Database(f"sqlite:///{tmp_path / 'elsewhere.db'}")  # never migrated: no table
    recorder = RescanRecorder(DecisionLog(broken), None, "v1")
    ledger = RescanLedger(tmp_path / "ledger.sqlite")
    seen = []
    counts = run_rescan(
        settings,
        StoreSpec(folder=str(folder)),
        ledger,
        workers=1,
        recorder=recorder,
        on_result=seen.append,
    )
    broken.dispose()
    assert counts == {"reject": 1}
    assert seen[0].reasons == ("store_error",)
    assert not ledger.seen("plain")
    ledger.close()


def test_a_rescan_after_a_flag_finds_the_crops_of_the_flagged_picture(tmp_path):
    """`warden flag FILE` keeps the picture's keypoints (issue 16); a rescan loads them
    beside the hash banks, as the gate does, so a 10 % crop already in storage (no
    hash matches it) is refused by the keypoint stage, and other photos are not.
    Fails when the rescan worker loads only the hash banks."""
    from tests import photos

    settings = load_settings(None, data_dir=tmp_path / "data")
    photo = photos.picture(photos.PHOTOGRAPHS[4])
    flagged = tmp_path / "flagged.jpg"
    flagged.write_bytes(encode(photo))
    env = {"WARDEN_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["flag", str(flagged)], env=env)
    assert result.exit_code == 0, result.output

    root = tmp_path / "files"
    root.mkdir()
    w, h = photo.size
    (root / "crop").write_bytes(encode(photo.crop((w // 10, h // 10, w - w // 10, h - h // 10))))
    (root / "other").write_bytes(encode(photos.picture(photos.PHOTOGRAPHS[7])))
    spec = StoreSpec(folder=str(root))
    got = {r.key: r for r in scan_with_pool(settings, spec, list(list_keys(spec)), 1)}
    assert got["crop"].decision == "reject" and got["crop"].reasons == ("hash_match",)
    assert got["crop"].verdict is not None
    assert [m["variant"] for m in got["crop"].verdict.matches] == ["keypoints"]
    assert got["other"].decision == "accept"
