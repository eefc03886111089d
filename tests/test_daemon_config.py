"""config.py: defaults, strict validation with key paths, effective-config output."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tempod import config
from tempod.config import ConfigError

MINIMAL = """
[node]
name = "n1"
address = "127.0.0.11"
[auth]
key_file = "tempo.key"
"""


@pytest.fixture
def cfgdir(tmp_path: Path) -> Path:
    (tmp_path / "tempo.key").write_text("ab" * 32 + "\n")
    return tmp_path


def write(d: Path, text: str) -> Path:
    p = d / "tempod.toml"
    p.write_text(text)
    return p


def test_defaults_match_the_contract(cfgdir: Path) -> None:
    cfg = config.load(write(cfgdir, MINIMAL))
    n = cfg.node
    assert (n.name, n.address, n.tsp_port, n.ntp_port, n.master_eligible) == ("n1", "127.0.0.11", 525, 123, True)
    assert n.round_interval_s == 10.0 and n.probes_per_round == 4 and n.probe_timeout_s == 0.2
    assert (n.election_timeout_min_s, n.election_timeout_max_s) == (3.0, 6.0)
    assert n.answer_delay_max_s == 0.05 and n.refuse_window_s == 1.0
    assert n.retransmit_initial_s == 0.05 and n.retransmit_max_tries == 4 and n.purge_after_missed == 3
    assert (n.backend, n.slew_max_ppm, n.step_threshold_s, n.freq_max_ppm) == ("process", 500.0, 0.128, 150000.0)
    assert (n.agreement_s, n.settime_threshold_s) == (0.020, 1.0)
    r = cfg.runtime
    assert r.key_file == cfgdir / "tempo.key"  # relative to the config file
    assert r.key_id == 1 and r.auth_required is True
    assert r.event_log == Path("/var/log/tempo/events.jsonl")
    assert r.cpu_report_interval_s == 10.0 and r.trace is False


def test_every_default_equals_nodeconfig_default() -> None:
    # Two tables of defaults (SCHEMA and NodeConfig) must not drift apart.
    from dataclasses import fields

    from tempod.nodeconfig import NodeConfig
    nc_defaults = {f.name: f.default for f in fields(NodeConfig)}
    for section in ("node", "timers", "clock", "sync"):
        for key, spec in config.SCHEMA[section].items():
            if spec.default is not None:
                assert nc_defaults[key] == spec.default, f"{section}.{key}"


def test_full_file_with_peers(cfgdir: Path) -> None:
    cfg = config.load(write(cfgdir, MINIMAL.replace("[auth]", """
tsp_port = 5525
ntp_port = 0
[peers]
hosts = [ { name = "n2", address = "127.0.0.12" }, { name = "n3", address = "127.0.0.13" } ]
trusted = ["n1", "n2"]
[timers]
round_interval_s = 1
[auth]""")))
    assert cfg.node.peer_names == ("n2", "n3")
    assert cfg.node.trusted == ("n1", "n2")
    assert cfg.node.round_interval_s == 1.0 and isinstance(cfg.node.round_interval_s, float)
    assert cfg.peer_address("n3") == ("127.0.0.13", 5525)
    assert cfg.node.ntp_port == 0


@pytest.mark.parametrize("extra, key, words", [
    ("[timers]\nround_interval_s = -1", "timers.round_interval_s", "must be > 0, got -1.0"),
    ("[timers]\nround_interval_s = \"10\"", "timers.round_interval_s", "must be a number, got a string"),
    ("[timers]\nprobes_per_round = 2.5", "timers.probes_per_round", "must be an integer"),
    ("[timers]\nprobes_per_round = true", "timers.probes_per_round", "must be an integer, got a boolean"),
    ("[timers]\nbogus = 1", "timers.bogus", "unknown key"),
    ("[bogus]\nx = 1", "bogus", "unknown section"),
    ("[timers]\nelection_timeout_min_s = 7.0", "timers.election_timeout_min_s", "must be <= timers.election_timeout_max_s"),
    ("[timers]\nround_interval_s = 0.5\nprobes_per_round = 4\nprobe_timeout_s = 0.2", "timers.round_interval_s", "must exceed"),
    ("[clock]\nbackend = \"ntp\"", "clock.backend", "must be one of"),
    ("[clock]\nslew_max_ppm = nan", "clock.slew_max_ppm", "must be finite"),
    ("[log]\ncpu_report_interval_s = 0", "log.cpu_report_interval_s", "must be > 0"),
    ("[log]\ntrace = \"yes\"", "log.trace", "must be a boolean"),
    ("[peers]\nhosts = [ { name = \"n2\", address = \"127.0.0.12\" }, { name = \"n2\", address = \"127.0.0.13\" } ]",
     "peers.hosts[1].name", "duplicate name 'n2'"),
    ("[peers]\nhosts = [ { name = \"n1\", address = \"127.0.0.12\" } ]", "peers.hosts[0].name", "duplicate name 'n1'"),
    ("[peers]\nhosts = [ { name = \"n2\", address = \"127.0.0.11\" } ]", "peers.hosts[0].address", "duplicate address"),
    ("[peers]\nhosts = [ { name = \"n2\", address = \"host.example\" } ]", "peers.hosts[0].address", "IPv4 or IPv6"),
    ("[peers]\nhosts = [ { name = \"n2\" } ]", "peers.hosts[0].address", "is required"),
    ("[peers]\nhosts = [ { name = \"n2\", address = \"127.0.0.12\", port = 1 } ]", "peers.hosts[0].port", "unknown key"),
    ("[peers]\nhosts = [ { name = \"n\u00e9\", address = \"127.0.0.12\" } ]", "peers.hosts[0].name", "printable ASCII"),
    ("[peers]\nhosts = [ { name = \"" + "x" * 64 + "\", address = \"127.0.0.12\" } ]", "peers.hosts[0].name", "at most 63 bytes"),
    ("[peers]\ntrusted = [\"n9\"]", "peers.trusted[0]", "neither node.name nor"),
    ("[peers]\nhosts = \"n2\"", "peers.hosts", "must be an array"),
    ("[timers]\nretransmit_max_tries = 0", "timers.retransmit_max_tries", "must be in [1, 32]"),
])
def test_bad_values_name_their_key(cfgdir: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        config.load(write(cfgdir, MINIMAL + extra + "\n"))
    assert ei.value.key == key
    assert str(ei.value).startswith(key + ": ")
    assert words in str(ei.value)


@pytest.mark.parametrize("node, key, words", [
    ('name = "n1"', "node.address", "is required"),
    ('address = "127.0.0.11"', "node.name", "is required"),
    ('name = "' + "a" * 64 + '"\naddress = "127.0.0.11"', "node.name", "at most 63 bytes"),
    ('name = "n\u00fc"\naddress = "127.0.0.11"', "node.name", "printable ASCII"),
    ('name = "n1"\naddress = "127.0.0.11"\ntsp_port = 70000', "node.tsp_port", "must be in [1, 65535]"),
    ('name = "n1"\naddress = "127.0.0.11"\ntsp_port = 123', "node.ntp_port", "must differ"),
])
def test_bad_node_section(cfgdir: Path, node: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        config.load(write(cfgdir, f"[node]\n{node}\n[auth]\nkey_file = \"tempo.key\"\n"))
    assert ei.value.key == key and words in str(ei.value)


def test_missing_key_file_only_matters_when_auth_required(cfgdir: Path) -> None:
    text = MINIMAL.replace('"tempo.key"', '"absent.key"')
    with pytest.raises(ConfigError) as ei:
        config.load(write(cfgdir, text))
    assert ei.value.key == "auth.key_file" and "does not exist" in str(ei.value)
    cfg = config.load(write(cfgdir, text + "required = false\n"))
    assert cfg.runtime.auth_required is False


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        config.load(write(tmp_path, "[node\nname="))
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(tmp_path / "bin.toml")


def test_effective_config_round_trips(cfgdir: Path) -> None:
    cfg = config.load(write(cfgdir, MINIMAL + "[peers]\nhosts = [ { name = \"n2\", address = \"127.0.0.12\" } ]\n"))
    text = config.to_toml(cfg)
    again = config.from_dict(tomllib.loads(text))
    assert again.node == cfg.node and again.runtime == cfg.runtime
    assert set(tomllib.loads(text)) == set(config.SCHEMA)


def test_reference_doc_is_generated_from_schema(repo: Path) -> None:
    doc = (repo / "docs" / "daemon.md").read_text()
    assert config.reference_markdown() in doc, "docs/daemon.md is stale: regenerate with `python -m tempod.config --reference`"


def test_realtime_priority_defaults_off_and_accepts_1_to_99(cfgdir: Path) -> None:
    assert config.load(write(cfgdir, MINIMAL)).runtime.realtime_priority == 0
    cfg = config.load(write(cfgdir, MINIMAL + "[process]\nrealtime_priority = 50\n"))
    assert cfg.runtime.realtime_priority == 50
    assert "realtime_priority = 50" in config.to_toml(cfg)
    assert config.summary(cfg)["realtime_priority"] == 50


@pytest.mark.parametrize("value, why", [
    ("-1", "must be in [0, 99], got -1"),
    ("100", "must be in [0, 99], got 100"),
    ("1.5", "must be an integer, got a float"),
    ("true", "must be an integer, got a boolean"),
    ('"high"', "must be an integer, got a string"),
])
def test_bad_realtime_priority_names_the_key(cfgdir: Path, value: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(cfgdir, MINIMAL + f"[process]\nrealtime_priority = {value}\n"))
    assert str(err.value) == f"process.realtime_priority: {why}"


def test_unknown_key_in_process_section(cfgdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^process\.nice: unknown key"):
        config.load(write(cfgdir, MINIMAL + "[process]\nnice = 5\n"))


def test_realtime_priority_refused_is_a_warning_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from tempod import main as tmain

    def refuse(*_a: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert tmain.set_realtime_priority(0) is None          # off: never asks the kernel
    w = tmain.set_realtime_priority(20)
    assert w is not None and w.startswith("process.realtime_priority = 20: cannot switch to SCHED_FIFO: not permitted")
    assert "running at normal priority" in w
