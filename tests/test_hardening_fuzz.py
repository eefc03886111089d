"""Property-based fuzz of the two file decoders users hand us: the daemon's config
(``tempod.config.load`` / ``from_dict``) and the runner's suite YAML
(``tempolab.runner.suite.load_suite_raw`` / ``parse_suite``).

Property: whatever the input, the decoder returns a result or raises its own error type
(``tempod.config.ConfigError`` / ``tempolab.errors.ConfigError``), never anything else;
and what it accepts is sane (finite numbers, no NaN slipping through a range check).
Inputs come in three layers: raw bytes, random documents of the right syntax, and
documents shaped like the schema (known keys, values of every type) that reach the deep
checks (strategies in tempolab.testing.fuzz). The wire codec has its own fuzz (tests/test_wire_fuzz.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tempod import config as tconfig
from tempolab.errors import ConfigError as SuiteError
from tempolab.runner import suite as tsuite
from tempolab.testing.fuzz import (  # the strategies, shared with benchmarks/bench_fuzz_decoders.py
    VALID_CONFIG, VALID_SUITE, check_config_result, check_suite_result, config_docs, mutated_config,
    mutated_suite, suite_docs, values, yaml_ish)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEEP = "x = " + "[" * 5000 + "]" * 5000   # found by hand: the parsers recurse per level


@FUZZ
@given(st.binary(max_size=400))
@example(DEEP.encode())
@example(b"\xff\xfe")
@example(b"[node]\nname = 'n1'\naddress = '10.0.0.1'\n[sync]\nagreement_s = 1" + b"0" * 400)  # was OverflowError
def test_config_load_of_any_bytes_raises_only_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "tempod.toml"
    path.write_bytes(data)
    try:
        check_config_result(tconfig.load(path))
    except tconfig.ConfigError:
        pass


@FUZZ
@given(st.text(alphabet=st.sampled_from(list('[]=."\'\n #{},0123456789abcdefntrueflsx_-+:eE')), max_size=200))
def test_config_load_of_toml_like_text_raises_only_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "tempod.toml"
    path.write_text(text)
    try:
        check_config_result(tconfig.load(path))
    except tconfig.ConfigError:
        pass


@FUZZ
@given(st.one_of(config_docs(), mutated_config(), values))
def test_config_from_any_document_raises_only_config_error(doc):
    try:
        check_config_result(tconfig.from_dict(doc, check_files=False))
    except tconfig.ConfigError as exc:
        assert str(exc)  # a message naming the key


@FUZZ
@given(st.one_of(suite_docs(), mutated_suite(), values))
def test_parse_suite_of_any_document_raises_only_config_error(doc):
    try:
        check_suite_result(tsuite.parse_suite(doc, "fuzz.yaml"))
    except SuiteError as exc:
        assert "fuzz.yaml" in str(exc) or "suite" in str(exc)


@FUZZ
@given(st.binary(max_size=400))
@example(DEEP.replace(" =", ":").encode())
@example(b"faults: &x [*x]\n")       # a recursive alias
@example(b"seed: 2001-12-14\n")      # YAML dates are not integers
@example(b"\x80")                    # not UTF-8 (was a UnicodeDecodeError)
@example(b"requires: null\n")        # was a TypeError
def test_load_suite_of_any_bytes_raises_only_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("suite") / "fuzz.yaml"
    path.write_bytes(data)
    try:
        check_suite_result(tsuite.load_suite_raw(str(path))[0])
    except SuiteError:
        pass


@FUZZ
@given(st.one_of(yaml_ish, suite_docs().map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_load_suite_of_yaml_text_raises_only_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("suite") / "fuzz.yaml"
    path.write_text(text)
    try:
        check_suite_result(tsuite.load_suite_raw(str(path))[0])
    except SuiteError:
        pass


def test_the_fuzz_reaches_acceptance():
    """The layered strategies are not all rejected at the door: a valid suite and a
    valid config pass the same checks the fuzz applies."""
    check_suite_result(tsuite.parse_suite({"faults": [{"kind": "kill", "at_s": 1, "duration_s": 2}],
                                           "sweep": [{"nodes": 5}]}, "ok.yaml"))
    check_suite_result(tsuite.parse_suite(VALID_SUITE, "valid.yaml"))
    check_config_result(tconfig.from_dict(VALID_CONFIG, check_files=False))
    with tempfile.TemporaryDirectory() as d:
        key = Path(d) / "k"
        key.write_text("00" * 32)
        key.chmod(0o600)
        cfg = tconfig.from_dict({"node": {"name": "n1", "address": "10.0.0.1"}, "auth": {"key_file": str(key)}})
        check_config_result(cfg)
