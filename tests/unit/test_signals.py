"""The hash-type registry (domain/signals.py): every kind banks use has one entry with
a validator, examples and an index class, and the tests are built from the examples."""

from __future__ import annotations

import hashlib

import pytest

from warden.adapters.hash_exchange import TE_TYPES
from warden.domain.banks import BankKind, normalise_hash
from warden.domain.signals import PDQ, SHA256, SIGNAL_TYPES, signal_type
from warden.errors import BadHash, InputError
from warden.media.matcher import INDEXES

ALL = list(SIGNAL_TYPES.values())


def test_every_bank_kind_has_a_type_and_an_index_class():
    assert {k.value for k in BankKind} == set(SIGNAL_TYPES) == set(INDEXES)
    assert {k.value for k in TE_TYPES.values()} == set(SIGNAL_TYPES)


@pytest.mark.parametrize("signal", ALL, ids=lambda s: s.name)
def test_examples_are_valid_and_canonical(signal):
    assert signal.examples
    for example in signal.examples:
        assert signal.normalise(f"  {example.upper()}\n") == example
        assert normalise_hash(BankKind(signal.name), example) == example
        assert signal.distance(example, example) == 0 and signal.accepts(example)
    assert signal.normalise_many([e.upper() for e in signal.examples]) == list(signal.examples)


@pytest.mark.parametrize("signal", ALL, ids=lambda s: s.name)
@pytest.mark.parametrize(
    "bad", ["", "abc", "g" * 64, "0" * 63, "0" * 65, "0x" + "0" * 62, "0" * 32 + " " + "0" * 31]
)
def test_bad_values_are_refused_by_name(signal, bad):
    with pytest.raises(BadHash, match=f"{signal.name} hash must be 64 hex digits") as caught:
        signal.normalise(bad)
    assert caught.value.code == "bad_hash" and isinstance(caught.value, InputError)
    assert not signal.accepts(bad)
    with pytest.raises(BadHash, match=f"got {bad.strip()[:80]!r}"):
        signal.normalise_many([*signal.examples, bad])


def test_sha256_examples_are_real_digests():
    assert SHA256.examples[0] == hashlib.sha256(b"").hexdigest()
    assert SHA256.examples[1] == hashlib.sha256(b"abc").hexdigest()


def test_pdq_distance_and_thresholds_follow_threatexchange():
    a, b = PDQ.examples[0], PDQ.examples[1]  # bridge-mods: two edits of one picture
    assert 0 < PDQ.distance(a, b) <= PDQ.default_threshold == 31
    far = PDQ.distance(PDQ.examples[0], PDQ.examples[-1])  # a bridge vs the invertocat
    assert far > PDQ.default_threshold
    assert not PDQ.exact and SHA256.exact and SHA256.distance(a, b) == 1


def test_unknown_type_is_refused():
    with pytest.raises(BadHash, match="unknown hash type 'md5'"):
        signal_type("md5")
