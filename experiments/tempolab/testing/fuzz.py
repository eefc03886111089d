"""Hypothesis strategies and result checks for the two file decoders users hand us: the
daemon's config (``tempod.config``) and the runner's suite YAML (``tempolab.runner.suite``).

Owns the input layers (values of every type, documents shaped like each schema, one-key
mutants of a valid document, YAML-ish text) and what an accepted result must satisfy
(finite numbers; every sweep point applies). Shared by tests/test_hardening_fuzz.py
(400 inputs per property in CI) and benchmarks/bench_fuzz_decoders.py (longer runs).
Needs hypothesis (a dev dependency), like the rest of this package it is not shipped.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import strategies as st

from tempod import config as tconfig
from tempolab.runner import suite as tsuite

# --- shared value strategies ---------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),   # beyond float range
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["", "n1", "10.0.0.1", "::1", "master", "uniform", "kill", "n1 n2"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def all_numbers_finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return all(all_numbers_finite(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return all(all_numbers_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_numbers_finite(v) for v in obj)
    return True


# --- the daemon config ---------------------------------------------------------------

def config_docs() -> st.SearchStrategy[dict]:
    """Documents with the schema's sections and keys and values of any type."""
    sections = {}
    for section, keys in tconfig.SCHEMA.items():
        key_names = list(keys) + ["bogus"]
        sections[section] = st.dictionaries(st.sampled_from(key_names), values, max_size=len(key_names))
    hosts = st.lists(st.fixed_dictionaries({}, optional={"name": st.one_of(st.sampled_from(["n2", "n3", "n1"]), values),
                                                         "address": st.one_of(st.sampled_from(["10.0.0.2", "10.0.0.1"]), values)}),
                     max_size=3)
    return st.fixed_dictionaries(
        {"node": st.fixed_dictionaries({"name": st.sampled_from(["n1", "x" * 64, "a b"]),
                                         "address": st.sampled_from(["10.0.0.1", "999.1.1.1", "::1"])},
                                        optional={k: values for k in ("tsp_port", "ntp_port", "master_eligible")})},
        optional={**{s: sections[s] for s in tconfig.SCHEMA if s != "node"},
                  "peers": st.fixed_dictionaries({}, optional={"hosts": st.one_of(hosts, values), "trusted": values}),
                  "extra": values})


VALID_CONFIG = {"node": {"name": "n1", "address": "10.0.0.1"},
                "peers": {"hosts": [{"name": "n2", "address": "10.0.0.2"}], "trusted": ["n1", "n2"]},
                "auth": {"required": False}}


@st.composite
def mutated_config(draw) -> dict:
    """A valid config with one key (any section, any schema key) set to any value: every
    value check is reached, not only the first one a random document trips over."""
    doc = {k: dict(v) for k, v in VALID_CONFIG.items()}
    section = draw(st.sampled_from(list(tconfig.SCHEMA)))
    key = draw(st.sampled_from(list(tconfig.SCHEMA[section])))
    doc.setdefault(section, {})[key] = draw(values)
    return doc


def check_config_result(cfg) -> None:
    assert isinstance(cfg, tconfig.DaemonConfig)
    assert all_numbers_finite(cfg.node) and all_numbers_finite(cfg.runtime)


# --- the suite YAML ------------------------------------------------------------------

fault_docs = st.dictionaries(
    st.sampled_from(list(tsuite._FAULT) + ["bogus"]),
    st.one_of(values, st.sampled_from(list(tsuite.FAULT_KINDS) + list(tsuite.TARGETS)),
              st.lists(st.floats(allow_nan=True), min_size=0, max_size=3)),
    max_size=6)
sweep_docs = st.lists(st.dictionaries(
    st.sampled_from(["nodes", "drift.max_ppm", "drift.distribution", "daemon.round_interval_s",
                     "daemon.probes_per_round", "daemon.nope", "x"]), values, max_size=3), max_size=3)


def suite_docs() -> st.SearchStrategy[dict]:
    top = {k: values for k in tsuite._TOP}
    top["faults"] = st.one_of(st.lists(fault_docs, max_size=3), values)
    top["sweep"] = st.one_of(sweep_docs, values)
    top["daemon"] = st.one_of(st.dictionaries(st.sampled_from(list(tsuite.DAEMON_KEYS) + ["bogus"]), values,
                                              max_size=4), values)
    top["drift"] = st.one_of(st.dictionaries(st.sampled_from(["distribution", "max_ppm", "max_offset_s", "seed"]),
                                             values, max_size=4), values)
    top["lab"] = st.one_of(st.dictionaries(st.sampled_from(["name", "subnet", "x"]), values, max_size=2), values)
    return st.fixed_dictionaries({}, optional=top)


VALID_SUITE = {"nodes": 5, "trial_duration_s": 30, "faults": [{"kind": "partition", "at_s": [1, 2], "duration_s": 5,
                                                             "side_a": 2}],
               "sweep": [{"nodes": 3}, {"daemon.round_interval_s": 2.0}]}


@st.composite
def mutated_suite(draw) -> dict:
    """A valid suite with one field (top level, in the fault, or in a sweep point) replaced."""
    doc = {"nodes": 5, "trial_duration_s": 30, "faults": [dict(VALID_SUITE["faults"][0])],
           "sweep": [dict(p) for p in VALID_SUITE["sweep"]]}
    where = draw(st.sampled_from(["top", "fault", "sweep", "daemon", "drift"]))
    if where == "top":
        doc[draw(st.sampled_from(tsuite._TOP))] = draw(values)
    elif where == "fault":
        doc["faults"][0][draw(st.sampled_from(tsuite._FAULT))] = draw(st.one_of(
            values, st.sampled_from(list(tsuite.FAULT_KINDS) + list(tsuite.TARGETS))))
    elif where == "sweep":
        doc["sweep"][0][draw(st.sampled_from(["nodes", "drift.max_ppm", "drift.distribution",
                                              *(f"daemon.{k}" for k in tsuite.DAEMON_KEYS)]))] = draw(values)
    else:
        keys = list(tsuite.DAEMON_KEYS) if where == "daemon" else ["distribution", "max_ppm", "max_offset_s", "seed"]
        doc[where] = {draw(st.sampled_from(keys)): draw(values)}
    return doc


def check_suite_result(s) -> None:
    assert isinstance(s, tsuite.Suite)
    assert all_numbers_finite(s), s
    # every sweep point applies cleanly (one trial per point: `trials` may be huge)
    for point in range(max(1, len(s.sweep))):
        assert all_numbers_finite(s.at_point(point * s.trials))


yaml_ish = st.text(alphabet=st.sampled_from(list("{}[]:-,&*!|>'\"#%@`\n 0123456789.eEnaofkilstrueyxY~")),
                   max_size=200)
