"""Fuzz harnesses: the decoder and the request parsers under random and mutated input.

`targets` holds one function per harness (bytes in, an exception only when the
contract is broken), `seeds` writes the starting corpora, `harness` runs a
target under atheris (libFuzzer), and `regressions/<target>/` keeps every input
that ever broke a contract, replayed by `test_fuzz.py` on every test run.
"""
