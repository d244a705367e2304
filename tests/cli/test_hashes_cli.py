"""`warden hashes`, `warden flag` and `warden unflag` through Typer's runner."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import warden.cli as cli_root
from tests.conftest import encode
from warden.adapters import hash_exchange
from warden.cli import COMMANDS, app, register
from warden.config import load_settings
from warden.domain.banks import BankKind
from warden.domain.policy import LabelPolicy
from warden.errors import HashFileError
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


# -- issue 16: lazy command loading and the batched import ---------------------------


def _eager_app() -> typer.Typer:
    """The `warden` app as it was assembled before commands loaded lazily: every
    command module imported and registered up front, same table, same settings."""
    eager = typer.Typer(
        name="warden",
        help="Warden: the safety layer beside Lemmy and pict-rs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name, (module, attribute) in COMMANDS.items():
        register(eager, name, getattr(importlib.import_module(module), attribute))
    eager.callback()(cli_root._root)
    return eager


def test_lazy_commands_keep_names_help_and_options():
    """`warden --help` and each command's --help read as the eager app's (docs/cli.md
    comes from the lazy one: tests/unit/test_docs.py)."""
    eager = _eager_app()
    paths = [[]] + [[name] for name in COMMANDS] + [["hashes", "match"], ["hashes", "import"]]
    for path in paths:
        lazy_help = runner.invoke(app, [*path, "--help"], terminal_width=100)
        eager_help = runner.invoke(eager, [*path, "--help"], terminal_width=100)
        assert lazy_help.exit_code == eager_help.exit_code == 0, path
        assert lazy_help.output == eager_help.output, path
    group = typer.main.get_command(app)
    assert isinstance(group, cli_root.LazyGroup)
    assert list(group.commands) == list(COMMANDS)  # walking the tree sees every command


def test_hashes_match_loads_only_what_it_needs(env):
    """A hash lookup imports neither the other commands, the web stack, Alembic (on
    a migrated database) nor the image stack: what kept it over 1 s (issue 16)."""
    ok("hashes", "banks", "create", "known", "--kind", "pdq")
    ok("hashes", "add", "known", PDQ_A)
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('MODULES', *sorted(sys.modules), file=sys.stderr))\n"
        "from warden.cli import main\n"
        f"sys.argv = ['warden', 'hashes', 'match', '{PDQ_A}']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr  # found: exit 1
    assert "known" in done.stdout
    modules = set(done.stderr.split("MODULES", 1)[1].split())
    unwanted = {
        "warden.cli.invites",
        "warden.cli.decisions",
        "warden.cli.feeds",
        "warden.cli.serve",
        "warden.jobs.flag",
        "warden.web",
        "fastapi",
        "alembic",
        "cryptography",
    }
    assert modules & unwanted == set()


def _flat(batches: list[list[hash_exchange.HashGroup]]) -> list[tuple[str | None, str, str]]:
    return [
        (g.bank, v, n)
        for batch in batches
        for g in batch
        for v, n in zip(g.values, g.notes, strict=True)
    ]


def _both(text: str, fmt: str, kind: BankKind | None, size: int) -> tuple[object, object]:
    """What `read` and `read_batches` give for the same text: lines, or the error."""
    outcomes: list[object] = []
    for batched in (False, True):
        got: list[tuple[str | None, str, str]] = []
        stats = hash_exchange.ReadStats()
        try:
            if batched:
                for batch in hash_exchange.read_batches(
                    io.StringIO(text), fmt, kind=kind, stats=stats, size=size
                ):
                    got += _flat([batch])
            else:
                lines = hash_exchange.read(io.StringIO(text), fmt, kind=kind, stats=stats)
                for ln in lines:
                    got.append((ln.bank, ln.value, ln.note))
            outcomes.append((got, dict(stats.skipped)))
        except HashFileError as exc:
            outcomes.append((got, str(exc)))  # lines before the error, and the error
    return outcomes[0], outcomes[1]


def _per_bank(outcome: object) -> tuple[dict[str | None, list[tuple[str, str]]], object]:
    lines, end = outcome  # type: ignore[misc]
    banks: dict[str | None, list[tuple[str, str]]] = {}
    for bank, value, note in lines:
        banks.setdefault(bank, []).append((value, note))
    return banks, end


HEX = [f"{k:064x}" for k in range(1, 40)]


@pytest.mark.parametrize(
    ("text", "fmt", "kind"),
    [
        ("".join(f"pdq {h}\n" for h in HEX), "te", None),
        ("".join(f"PDQ {h.upper()}\r\n" for h in HEX), "te", None),
        (
            "".join(f"pdq {h}\n" for h in HEX[:20])
            + "\n# note\n"
            + f"video_md5 {HEX[0][:32]}\n"
            + "".join(f"photo_sha256 {h}\n" for h in HEX[20:]),
            "te",
            None,
        ),
        ("".join(f"{h}\n" for h in HEX), "te", BankKind.PDQ),
        ("".join(f"{h}\n" for h in HEX), "te", None),  # bare lines, no kind: line 1
        (
            "".join(f"pdq {h}\n" for h in HEX[:25]) + f"pdq {HEX[25][:-1]}\n" + f"pdq {HEX[26]}",
            "te",
            None,
        ),
        ("".join(f"pdq {h}\n" for h in HEX[:25]) + f"pdq {HEX[25][:-1]}g\n", "te", None),
        ("".join(f"pdq  {h} \n" for h in HEX), "te", None),
        ("".join(f"pdq {h}\n" for h in HEX[:10]) + "pdq \u212a" + HEX[10][1:] + "\n", "te", None),
        (
            "hash,kind,bank,note\n"
            + "".join(f"{h},pdq,b{k % 3},n{k}\n" for k, h in enumerate(HEX)),
            "csv",
            None,
        ),
        (
            "hash,kind,bank,note\n"
            + "".join(f'{h},pdq,,"a,\nb"\n' for h in HEX[:15])
            + f"{HEX[15]},md5,,\n",
            "csv",
            None,
        ),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_batched_reading_gives_what_line_reading_gives(text, fmt, kind, size):
    """`read_batches` (what `warden hashes import` uses) yields exactly `read`'s lines,
    skips and errors, with the lines before a bad one, whatever the batch size."""
    line_by_line, batched = _both(text, fmt, kind, size)
    assert _per_bank(batched) == _per_bank(line_by_line)  # batches group lines by bank


def test_import_batches_keep_provenance_and_dedupe(env):
    """Through the command: a value repeated in the file is one entry with the last
    line's note; a value already in the bank counts as there; notes become reasons."""
    ok("hashes", "banks", "create", "b", "--kind", "pdq")
    ok("hashes", "add", "b", HEX[0])
    rows = [f"{HEX[1]},pdq,,first", f"{HEX[0]},pdq,,", f"{HEX[1]},pdq,,second", f"{HEX[2]},pdq,,"]
    path = env / "list.csv"
    path.write_text("hash,kind,bank,note\n" + "\n".join(rows) + "\n")
    out = ok("hashes", "import", str(path), "--bank", "b", "--reason", "default")
    assert "b: 2 added, 0 restored, 1 already there" in out
    listed = ok("hashes", "list", "b")
    assert "second" in listed and "first" not in listed and "default" in listed


def test_a_hash_of_another_kind_is_refused_not_filed_under_the_banks_kind(env):
    """A SHA-256 is 64 hex digits like a PDQ hash: a sha256 line for a PDQ bank (CSV or
    ThreatExchange) names its line and is never matched as a picture's PDQ."""
    ok("hashes", "banks", "create", "pdqs", "--kind", "pdq")
    csv_list = env / "mixed.csv"
    csv_list.write_text(f"hash,kind,bank,note\n{PDQ_A},pdq,pdqs,\n{'ab' * 32},sha256,pdqs,\n")
    refused = runner.invoke(app, ["hashes", "import", str(csv_list)])
    assert refused.exit_code == 1
    assert "line 3: a sha256 hash for bank 'pdqs', which holds pdq hashes" in refused.output
    te_list = env / "sha.te"
    te_list.write_text(f"sha256 {'cd' * 32}\n")
    refused = runner.invoke(
        app, ["hashes", "import", str(te_list), "--format", "te", "--bank", "pdqs"]
    )
    assert refused.exit_code == 1 and "a sha256 hash for bank 'pdqs'" in refused.output
    listed = ok("hashes", "list", "pdqs")
    assert "ab" * 32 not in listed and "cd" * 32 not in listed


def test_a_file_added_by_hand_keeps_its_keypoints_and_its_crop_is_refused(env):
    """`warden hashes add BANK FILE` keeps the file's keypoints beside the entry, as
    `warden flag` does (issue 16): the scanner's keypoint stage then refuses a 10 %
    crop that no hash matches. Fails without `keep_features_in` (no row is kept)."""
    from tests import photos
    from warden.media.decoder_pool import InProcessDecoder
    from warden.media.keypoint_stage import KeypointStage
    from warden.services.keypoint_sync import KeypointSync
    from warden.services.scanning import decode_limits
    from warden.store.banks import BankStore
    from warden.store.keypoint_features import KeypointFeatureStore

    photo = photos.picture(photos.PHOTOGRAPHS[2])
    path = env / "held.jpg"
    photo.save(path, quality=90)
    ok("hashes", "banks", "create", "known", "--kind", "pdq")
    assert "keypoints kept for 1 file(s)" in ok("hashes", "add", "known", str(path))

    settings = load_settings(None, data_dir=env / "data")
    db = Database(settings.database_url)
    [row] = KeypointFeatureStore(db).live()
    stage = KeypointStage()
    assert KeypointSync(KeypointFeatureStore(db), BankStore(db), stage).load() == 1
    scanner = Scanner(
        limits=decode_limits(settings),
        policy=LabelPolicy(()),
        classifier=None,
        decoder=InProcessDecoder(),
        keypoints=stage,
    )
    w, h = photo.size
    cropped = photo.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    matches = scanner.prepare(encode(cropped, "JPEG"), ScanContext()).matches
    assert [m.entry_id for m in matches] == [row.entry_id]
    other = photos.picture(photos.PHOTOGRAPHS[5])
    assert not scanner.prepare(encode(other, "JPEG"), ScanContext()).matches
