"""`warden hashes`, `warden flag` and `warden unflag` through Typer's runner."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import encode
from warden.cli import app
from warden.config import load_settings
from warden.domain.policy import LabelPolicy
from warden.media.decode import DecodeLimits
from warden.media.pipeline import ScanContext, Scanner
from warden.store.database import Database
from warden.store.decisions import DecisionLog

runner = CliRunner()
PDQ_A = "ab" * 32
PDQ_B = "f0" * 32


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    return tmp_path


def ok(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_banks_create_list_update_delete(env):
    ok("hashes", "banks", "create", "ncmec", "--kind", "pdq", "--csam", "--threshold", "28")
    ok("hashes", "banks", "create", "exact", "--kind", "sha256", "--action", "review")
    listing = ok("hashes", "banks")
    assert "ncmec" in listing and "yes" in listing and "28" in listing and "review" in listing
    ok("hashes", "banks", "update", "exact", "--action", "allow")
    assert "allow" in ok("hashes", "banks")
    bad = runner.invoke(app, ["hashes", "banks", "update", "ncmec", "--action", "review"])
    assert bad.exit_code == 1 and "csam bank must reject" in bad.output
    ok("hashes", "banks", "delete", "exact", "--yes")
    assert "exact" not in ok("hashes", "banks")


def test_csv_import_export_round_trip(env):
    ok("hashes", "banks", "create", "known", "--kind", "pdq")
    ok("hashes", "banks", "create", "exact", "--kind", "sha256")
    src = env / "list.csv"
    src.write_text(
        f"hash,kind,bank,note\n{PDQ_A},pdq,known,from partner\n{'cd' * 32},sha256,exact,\n"
        f"{PDQ_B.upper()},pdq,,\n"
    )
    out = ok("hashes", "import", str(src), "--bank", "known")
    assert "known: 2 added" in out and "exact: 1 added" in out
    again = ok("hashes", "import", str(src), "--bank", "known")
    assert "known: 0 added, 0 restored, 2 already there" in again
    exported = ok("hashes", "export", "known")
    lines = exported.strip().splitlines()
    assert lines[0] == "hash,kind,bank,note"
    assert sorted(lines[1:]) == sorted([f"{PDQ_A},pdq,known,from partner", f"{PDQ_B},pdq,known,"])


def test_threatexchange_signal_file(env):
    ok("hashes", "banks", "create", "te", "--kind", "pdq")
    src = env / "signals.txt"
    src.write_text(f"pdq {PDQ_A}\nvideo_md5 d41d8cd98f00b204e9800998ecf8427e\n\npdq {PDQ_B}\n")
    out = ok("hashes", "import", str(src), "--format", "te", "--bank", "te")
    assert "te: 2 added" in out and "skipped 1 video_md5" in out
    assert ok("hashes", "export", "te", "--format", "te").split("\n")[:2] == [
        f"pdq {PDQ_A}",
        f"pdq {PDQ_B}",
    ]
    bare = env / "bare.txt"
    bare.write_text(f"{'11' * 32}\n")
    refused = runner.invoke(app, ["hashes", "import", str(bare), "--format", "te", "--bank", "te"])
    assert refused.exit_code == 1 and "line 1: a bare hash" in refused.output
    out = ok("hashes", "import", str(bare), "--format", "te", "--bank", "te", "--kind", "pdq")
    assert "te: 1 added" in out


def test_a_bad_line_names_itself_and_keeps_what_came_before(env):
    ok("hashes", "banks", "create", "known", "--kind", "pdq")
    src = env / "list.csv"
    src.write_text(f"hash,kind,bank,note\n{PDQ_A},pdq,known,\nnot-a-hash,pdq,known,\n")
    result = runner.invoke(app, ["hashes", "import", str(src)])
    assert result.exit_code == 1
    assert "line 3" in result.output and "64 hex digits" in result.output
    assert PDQ_A in ok("hashes", "export", "known")
    broken = env / "broken.csv"
    broken.write_text("sha,what\n")
    result = runner.invoke(app, ["hashes", "import", str(broken)])
    assert result.exit_code == 1 and "expected the header" in result.output


def test_add_list_remove_and_match(env, ordinary_images):
    ok("hashes", "banks", "create", "known", "--kind", "pdq")
    photo = env / "chelsea.png"
    ordinary_images["chelsea"].save(photo)
    ok("hashes", "add", "known", str(photo), PDQ_A, "--reason", "test", "--by", "carol")
    listing = ok("hashes", "list", "known")
    assert "carol" in listing and "test" in listing
    smaller = env / "small.jpg"
    img = ordinary_images["chelsea"]
    img.resize((img.width // 2, img.height // 2)).save(smaller, quality=50)
    hit = runner.invoke(app, ["hashes", "match", str(smaller)])
    assert hit.exit_code == 1 and "known" in hit.output
    assert ok("hashes", "match", PDQ_B).strip() == "no match"
    ok("hashes", "remove", "known", PDQ_A, "--reason", "mistake")
    assert ok("hashes", "match", PDQ_A).strip() == "no match"


def _log(env: Path, images: list[tuple[Image.Image, str]]) -> list[int]:
    """Scan images as uploads and write their decisions, as the gate does."""
    settings = load_settings(None, data_dir=env / "data")
    db = Database(settings.database_url)
    db.upgrade()
    scanner = Scanner(limits=DecodeLimits(), policy=LabelPolicy(()), classifier=None)
    log = DecisionLog(db)
    ids = []
    for img, uploader in images:
        item = scanner.prepare(encode(img, "JPEG", quality=80), ScanContext("upload"))
        [verdict] = scanner.finish([item])  # no model here: refused, closed, hashes kept
        ids.append(log.record(verdict, source="upload", uploader=uploader, config_version="t"))
    db.dispose()
    return ids


def test_flag_finds_earlier_uploads_and_unflag_allows(env, ordinary_images):
    img = ordinary_images["rocket"]
    small = img.resize((img.width // 2, img.height // 2))
    other = ordinary_images["coffee"]
    first, second, unrelated = _log(
        env, [(img, "spammer@evil.example"), (small, "alt@evil.example"), (other, "fine")]
    )
    out = ok("flag", str(first), "--reason", "attack wave", "--by", "admin")
    assert "flagged decision" in out and "new hashes in local-confirmed" in out
    assert "1 earlier decisions match" in out and f"│ {second} " in out
    assert "uploaders: alt@evil.example, spammer@evil.example" in out
    assert f"│ {unrelated} " not in out
    hit = runner.invoke(app, ["hashes", "match", _save(env, small)])
    assert hit.exit_code == 1 and "local-confirmed" in hit.output

    out = ok("unflag", str(first), "--reason", "it was fine")
    assert "removed from local-confirmed" in out and "local-allow" in out
    hit = runner.invoke(app, ["hashes", "match", _save(env, small)])
    assert hit.exit_code == 1 and "local-allow" in hit.output and "reject" not in hit.output


def test_flag_refuses_what_it_cannot_name(env):
    result = runner.invoke(app, ["flag", "999"])
    assert result.exit_code == 1 and "no decision 999" in result.output
    result = runner.invoke(app, ["flag", "nonsense"])
    assert result.exit_code == 1 and "neither a file" in result.output


def _save(env: Path, img: Image.Image) -> str:
    path = env / f"img{id(img)}.png"
    buf = io.BytesIO()
    img.save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return str(path)
