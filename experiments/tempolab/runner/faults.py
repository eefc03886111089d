"""Fault objects: the exact shell commands that apply a fault and the ones that revert it.

In the style of EnOSlib's network constraints and Jepsen's nemeses: a fault is resolved
against concrete node names and addresses, then renders ``apply()`` and ``revert()`` as
``{node: shell command}``. Revert commands are idempotent (running them twice, or on a
node where the fault was never applied, is harmless) so that the runner can revert
everything it might have installed on any exit path, and ``tempo run --cleanup`` can
remove leftovers without knowing what was installed.

Dead-man (``guarded``): a fault with a planned end is applied together with a detached
watchdog on each node it touches (``setsid sh`` script under ``/run/tempo/deadman``)
that sleeps until the planned end plus a margin and then runs the node's idempotent
revert; the runner's normal revert cancels the watchdog in the same SSH command. So a
runner that is SIGKILLed (no ``finally``) still leaves no partition and no stopped
daemon behind once the margin has passed.

Pure: no SSH, no clock, no randomness except through the ``random.Random`` passed in.
Network faults live in a dedicated nftables table ``inet tempo_fault`` on the *input*
hook (a drop on output makes ``sendto`` fail with EPERM instead of losing the packet),
one chain per fault kind, so a partition and a loss can coexist and be healed apart.
"""

from __future__ import annotations

import base64
import random
import shlex
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..nodelayout import LAYOUT
from .suite import FaultSpec

NFT_TABLE = "inet tempo_fault"
# node paths: the roles' layout (nodelayout.py, checked against the roles by a test)
PIDFILE = LAYOUT.pidfile
# stock chronyd (protocol ntp, roles/chrony): the same service tool, its own files
CHRONY_PIDFILE = LAYOUT.chrony_pidfile
DAEMONS = ("tempod", "chronyd")

# the daemon's pid: first line of the pidfile tempod-service writes ("<pid>\nstarttime=N");
# empty when there is none.  Only one of tempod and chronyd runs at a time (they share
# the NTP port; a stopped one has no pidfile), so the first pidfile found names it.
# Under systemd (VMs) tempod has no pidfile: its unit's MainPID names it (0 when stopped).
PID_SNIPPET = (f"pid=$(head -q -n 1 {PIDFILE} {CHRONY_PIDFILE} 2>/dev/null | head -n 1); "
               "if [ -z \"$pid\" ] && command -v systemctl >/dev/null 2>&1; then "
               "pid=$(systemctl show -p MainPID --value tempod.service 2>/dev/null); "
               "[ \"$pid\" = 0 ] && pid=; fi; ")
_PID = PID_SNIPPET


def service_cmd(action: str, daemon: str = "tempod") -> str:
    """Start/stop/restart ``daemon`` (tempod with systemd when the unit exists, else
    tempod-service; chronyd always through tempod-service, roles/chrony).

    ``start`` is a no-op on a running daemon for both, which makes it a safe revert.
    """
    if action not in ("start", "stop", "restart", "status"):
        raise ValueError(f"unknown service action {action!r}")
    if daemon not in DAEMONS:
        raise ValueError(f"unknown daemon {daemon!r}")
    if daemon == "chronyd":
        return shlex.join([*LAYOUT.chrony_service_argv(), action])
    tool = shlex.join([*LAYOUT.tempod_service_argv(), action])
    return ("if command -v systemctl >/dev/null 2>&1 && systemctl cat tempod.service "
            f">/dev/null 2>&1; then systemctl {action} tempod; else {tool}; fi")


def signal_cmd(sig: str) -> str:
    """Send ``sig`` to the daemon; fails (exit 1) when no daemon is running."""
    return _PID + f'[ -n "$pid" ] && kill -{sig} "$pid"'


def cont_cmd() -> str:
    """SIGCONT the daemon if it runs (idempotent: a running process ignores it)."""
    return _PID + f'if [ -n "$pid" ]; then kill -CONT "$pid" 2>/dev/null; fi; true'


def _nft_set(addresses: list[str]) -> str:
    return "{ " + ", ".join(addresses) + " }"


def nft_chain_cmd(chain: str, rule: str, priority: int) -> str:
    """Create table+chain on the input hook and add ``rule`` (nft merges existing tables)."""
    # nft needs a newline (or ';') after a closing brace, so the script is multi-line
    script = (f"table {NFT_TABLE} {{\n  chain {chain} {{\n    type filter hook input "
              f"priority {priority}; policy accept;\n    {rule}\n  }}\n}}")
    return f"nft -f - <<'EOF'\n{script}\nEOF"


def nft_delete_chain_cmd(chain: str) -> str:
    # delete chain works with rules inside; 2>/dev/null + true: already gone is fine
    return f"nft delete chain {NFT_TABLE} {chain} 2>/dev/null; true"


def nft_cleanup_cmd() -> str:
    return f"nft delete table {NFT_TABLE} 2>/dev/null; true"


def netem_dev_cmd(peer: str) -> str:
    """Shell snippet that puts the interface towards ``peer`` in $dev."""
    return (f"dev=$(ip -o route get {shlex.quote(peer)} | "
            "sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); ")


# netem faults shape only the traffic to the other nodes: a prio root qdisc whose extra
# band 1:4 holds the netem and receives, through u32 filters, exactly the packets to the
# peers' addresses. Everything else (the controller's SSH, the observer's NTP replies)
# keeps the default bands, so the observer still measures the clock, not the fault: a
# netem on the whole root would delay the node's NTP replies one way and bias the
# observer by half that delay. One netem fault per node at a time (they share the root).
NETEM_HANDLE = "1:"
NETEM_BAND = "1:4"
# prio's default priomap (3 bands); band 4 is reached only through the filters
_PRIOMAP = "1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"


def netem_spec(*, delay_ms: float | None = None, jitter_ms: float | None = None,
               loss_percent: float | None = None) -> str:
    """The netem arguments (``delay 20ms 5ms distribution normal loss 10%``)."""
    parts = []
    if delay_ms is not None:
        parts.append(f"delay {delay_ms:g}ms")
        if jitter_ms:
            parts.append(f"{jitter_ms:g}ms distribution normal")
    if loss_percent is not None:
        parts.append(f"loss {loss_percent:g}%")
    if not parts:
        raise ValueError("a netem fault needs a delay or a loss")
    return " ".join(parts)


def netem_apply_cmd(peers: list[str], spec: str) -> str:
    """Install netem ``spec`` on egress to ``peers`` (idempotent: the tree is rebuilt)."""
    if not peers:
        raise ValueError("netem_apply_cmd: no peer addresses")
    filters = "".join(
        f' && tc filter add dev "$dev" parent {NETEM_HANDLE} protocol ip prio 1 u32 '
        f"match ip dst {shlex.quote(p)}/32 flowid {NETEM_BAND}" for p in peers)
    return (netem_dev_cmd(peers[0])
            + '[ -n "$dev" ] || { echo "tempo: no route to ' + peers[0] + '" >&2; exit 1; }; '
            + 'tc qdisc del dev "$dev" root 2>/dev/null; '
            + f'tc qdisc add dev "$dev" root handle {NETEM_HANDLE} prio bands 4 priomap {_PRIOMAP}'
            + f' && tc qdisc add dev "$dev" parent {NETEM_BAND} handle 40: netem {spec}'
            + filters)


def netem_revert_cmd(peer: str) -> str:
    """Remove the netem tree towards ``peer`` (idempotent: nothing there is fine)."""
    return netem_dev_cmd(peer) + '[ -z "$dev" ] || tc qdisc del dev "$dev" root 2>/dev/null; true'


def netem_cleanup_cmd() -> str:
    """Remove any root qdisc that holds a netem, on every interface (``--cleanup``)."""
    return ("if command -v tc >/dev/null 2>&1; then for __d in $(ls /sys/class/net); do "
            'if tc qdisc show dev "$__d" 2>/dev/null | grep -q netem; then '
            'tc qdisc del dev "$__d" root 2>/dev/null; fi; done; fi; true')


@dataclass(frozen=True)
class NodeRef:
    name: str
    address: str


@dataclass
class Fault:
    """A fault resolved against concrete nodes.

    ``apply_cmds`` / ``revert_cmds`` map node name -> shell command. ``targets`` are the
    nodes the fault is about (for the record); ``detail`` describes it for faults.jsonl.
    """

    kind: str
    at_s: float                      # after the trial's warm-up, seconds
    duration_s: float | None
    targets: list[str]
    apply_cmds: dict[str, str]
    revert_cmds: dict[str, str]
    detail: str
    revert_detail: str
    sides: tuple[list[str], list[str]] | None = None
    extra: dict = field(default_factory=dict)


def split_sides(nodes: list[NodeRef], side_a: int | tuple[str, ...] | None,
                master: str | None) -> tuple[list[str], list[str]]:
    """Side A and side B of a partition.

    ``None``: the master and the first nodes up to a minority (floor(n/2)) are side A,
    so the majority side B must elect a new master while the old one keeps ruling A.
    An int k: the first k nodes in inventory order; a tuple: those names.
    """
    names = [n.name for n in nodes]
    if isinstance(side_a, tuple):
        unknown = [s for s in side_a if s not in names]
        if unknown:
            raise ConfigError(f"partition side_a names unknown nodes: {', '.join(unknown)}")
        a = [n for n in names if n in side_a]
    elif isinstance(side_a, int):
        a = names[:side_a]
    else:
        k = max(1, len(names) // 2)
        a = [master] if master in names else []
        a += [n for n in names if n not in a][: k - len(a)]
        a = [n for n in names if n in a]
    b = [n for n in names if n not in a]
    if not a or not b:
        raise ConfigError(f"partition needs two non-empty sides, got A={a} B={b}")
    return a, b


def resolve_targets(selector: str | tuple[str, ...], nodes: list[NodeRef],
                    master: str | None, rng: random.Random,
                    sides: tuple[list[str], list[str]] | None = None) -> list[str]:
    names = [n.name for n in nodes]
    if isinstance(selector, tuple):
        unknown = [s for s in selector if s not in names]
        if unknown:
            raise ConfigError(f"fault targets name unknown nodes: {', '.join(unknown)}")
        return list(selector)
    if selector == "all":
        return names
    if selector == "master":
        if master is None:
            raise ConfigError("fault targets the master but there is no master")
        return [master]
    if selector == "random_follower":
        followers = [n for n in names if n != master]
        if not followers:
            raise ConfigError("fault targets a random follower but there is none")
        return [rng.choice(followers)]
    if selector in ("side_a", "side_b"):
        if sides is None:
            raise ConfigError(f"fault targets {selector} but no partition defines sides")
        return list(sides[0] if selector == "side_a" else sides[1])
    raise ConfigError(f"unknown fault target {selector!r}")


def resolve(spec: FaultSpec, nodes: list[NodeRef], master: str | None, rng: random.Random,
            sides: tuple[list[str], list[str]] | None = None, daemon: str = "tempod") -> Fault:
    """Turn a suite's FaultSpec into a concrete Fault (time drawn from ``rng``).

    ``daemon``: the time daemon the trial runs (tempod, or chronyd for protocol ntp),
    which kill/stop/restart act on and a kill's revert starts again."""
    at_s = spec.draw_at(rng)
    addr = {n.name: n.address for n in nodes}
    kind = spec.kind
    if kind == "partition":
        a, b = split_sides(nodes, spec.side_a, master)
        apply_, revert = {}, {}
        for mine, other in ((a, b), (b, a)):
            others = [addr[o] for o in other]
            for n in mine:
                apply_[n] = nft_chain_cmd("partition", f"ip saddr {_nft_set(others)} drop", -10)
                revert[n] = nft_delete_chain_cmd("partition")
        return Fault(kind, at_s, spec.duration_s, a + b, apply_, revert,
                     detail=f"partition A={','.join(a)} | B={','.join(b)}",
                     revert_detail="heal: chain partition deleted", sides=(a, b))
    targets = resolve_targets(spec.targets, nodes, master, rng, sides)
    if kind == "kill":
        apply_ = {t: signal_cmd("9") for t in targets}
        revert = {t: service_cmd("start", daemon) for t in targets}
        return Fault(kind, at_s, spec.duration_s, targets, apply_, revert,
                     detail=f"SIGKILL {daemon}", revert_detail="restart: service start")
    if kind == "stop":
        apply_ = {t: signal_cmd("STOP") for t in targets}
        revert = {t: cont_cmd() for t in targets}
        return Fault(kind, at_s, spec.duration_s, targets, apply_, revert,
                     detail=f"SIGSTOP {daemon}", revert_detail=f"SIGCONT {daemon}")
    if kind == "restart":
        apply_ = {t: service_cmd("restart", daemon) for t in targets}
        revert = {t: service_cmd("start", daemon) for t in targets}
        return Fault(kind, at_s, spec.duration_s, targets, apply_, revert,
                     detail="service restart", revert_detail="service start (no-op if running)")
    if kind == "loss":
        assert spec.percent is not None
        pct = spec.percent
        apply_, revert = {}, {}
        for t in targets:
            # only UDP from the other nodes: the controller's SSH and observer probes
            # stay clean, so the observer measures the clocks, not the fault
            others = [addr[o] for o in addr if o != t]
            if not others:
                continue
            rule = (f"ip saddr {_nft_set(others)} meta l4proto udp "
                    f"numgen random mod 100 < {int(round(pct))} drop")
            apply_[t] = nft_chain_cmd("loss", rule, -5)
            revert[t] = nft_delete_chain_cmd("loss")
        return Fault(kind, at_s, spec.duration_s, targets, apply_, revert,
                     detail=f"input loss {int(round(pct))}% of UDP from peers",
                     revert_detail="chain loss deleted", extra={"percent": pct})
    if kind in ("delay", "jitter", "netem_loss"):
        netem = (netem_spec(loss_percent=spec.percent) if kind == "netem_loss"
                 else netem_spec(delay_ms=spec.delay_ms, jitter_ms=spec.jitter_ms))
        apply_, revert = {}, {}
        for t in targets:
            peers = [addr[o] for o in addr if o != t]
            if not peers:
                continue
            apply_[t] = netem_apply_cmd(peers, netem)
            revert[t] = netem_revert_cmd(peers[0])
        extra = {"percent": spec.percent} if kind == "netem_loss" else {"delay_ms": spec.delay_ms,
                                                                        "jitter_ms": spec.jitter_ms}
        return Fault(kind, at_s, spec.duration_s, targets, apply_, revert,
                     detail=f"netem {netem} on egress to peers", revert_detail="netem qdisc deleted",
                     extra=extra)
    if kind == "asym_delay":
        # the targets' packets to everyone else wait delay_ms, everyone else's packets to
        # the targets reverse_delay_ms: a two-way estimate between a target and another
        # node is then biased by (delay - reverse) / 2 (docs/runner.md, the asymmetry suite)
        assert spec.delay_ms is not None and spec.reverse_delay_ms is not None
        others = [n for n in addr if n not in targets]
        if not others:
            raise ConfigError("asym_delay needs nodes outside its targets")
        apply_, revert = {}, {}
        ways = [(t, [addr[o] for o in others], spec.delay_ms) for t in targets]
        ways += [(o, [addr[t] for t in targets], spec.reverse_delay_ms) for o in others]
        for node, peers, ms in ways:
            revert[node] = netem_revert_cmd(peers[0])
            if ms > 0 or spec.jitter_ms:
                apply_[node] = netem_apply_cmd(peers, netem_spec(delay_ms=ms, jitter_ms=spec.jitter_ms))
        return Fault(kind, at_s, spec.duration_s, list(targets), apply_, revert,
                     detail=(f"netem asymmetric delay: {','.join(targets)} -> others {spec.delay_ms:g} ms, "
                             f"others -> {','.join(targets)} {spec.reverse_delay_ms:g} ms"),
                     revert_detail="netem qdiscs deleted",
                     extra={"delay_ms": spec.delay_ms, "reverse_delay_ms": spec.reverse_delay_ms,
                            "asymmetry_ms": spec.delay_ms - spec.reverse_delay_ms,
                            "jitter_ms": spec.jitter_ms})
    raise ConfigError(f"unknown fault kind {kind!r}")


def chronyd_cleanup_cmd(*, pidfile: str = CHRONY_PIDFILE, own_pidfile: str = LAYOUT.chrony_own_pidfile,
                        socket: str = LAYOUT.chrony_socket) -> str:
    """Stop a chronyd that a run of protocol ``ntp`` left behind and remove its files
    (idempotent; prints ``chronyd: ...`` only when there was something to remove).

    A run that dies in an ``ntp`` trial leaves chronyd running (maybe SIGSTOPped by a
    ``stop`` fault) on tempod's NTP port, so the tempod that ``--cleanup`` starts next
    could not bind it; a SIGKILLed chronyd leaves the service pidfile (stale) and its
    own pidfile and command socket. chronyd is SIGCONTed first, so that the service
    tool's SIGTERM is delivered at once rather than after its 10 s SIGKILL fallback.
    A chronyd named only by its own pidfile (the service pidfile removed by hand) is
    stopped too, after checking ``/proc/<pid>/comm`` so a recycled pid is left alone.
    The socket and chronyd's own pidfile go last, once no chronyd runs. (The paths are
    parameters for the unit test only; the node's are the roles', nodelayout.py.)
    """
    svc, own, sock = _check_path(pidfile), _check_path(own_pidfile), _check_path(socket)
    argv = LAYOUT.chrony_service_argv()
    argv[argv.index("--pidfile") + 1] = svc
    stop = shlex.join([*argv, "stop"])
    return "; ".join([
        f'__cp=$(head -n 1 {svc} 2>/dev/null); [ -n "$__cp" ] && kill -CONT "$__cp" 2>/dev/null',
        # the service tool says "tempod: ..." whatever it manages; name chronyd instead
        f"if [ -e {svc} ]; then {{ {stop} || echo 'tempod: stop failed'; }} 2>&1 | sed 's/^tempod:/chronyd:/'; fi",
        f'__op=$(head -n 1 {own} 2>/dev/null); '
        f'if [ -n "$__op" ] && [ "$(cat /proc/$__op/comm 2>/dev/null)" = chronyd ]; then '
        f'kill -CONT "$__op"; kill -TERM "$__op"; __i=0; '
        # gone or a zombie (its parent has not reaped it yet): either way it has exited
        f'while grep -qs "^State:[[:space:]]*[A-Ya-z]" /proc/$__op/status && [ $__i -lt 50 ]; do '
        f'sleep 0.1; __i=$((__i+1)); done; '
        f'grep -qs "^State:[[:space:]]*[A-Ya-z]" /proc/$__op/status && kill -KILL "$__op"; '
        f'echo "chronyd: stopped (pid $__op, named only by {own})"; fi',
        f"rm -f {own} {sock}",
        "true",
    ])


def cleanup_cmd() -> str:
    """Everything ``tempo run --cleanup`` does on one node (idempotent).

    Deletes the fault table, stops a chronyd left by an ``ntp`` run (it holds the NTP
    port tempod needs), SIGCONTs a stopped tempod, starts a dead one, and cancels
    pending dead-man watchdogs (their work is done; left alone, a stale one could heal
    a fault of the next run early). A root qdisc holding a netem is removed wherever
    one is found (this lab kernel has none).
    """
    return "; ".join([
        nft_cleanup_cmd(),
        netem_cleanup_cmd(),
        chronyd_cleanup_cmd(),
        cont_cmd(),
        service_cmd("start") + " >/dev/null 2>&1 || echo 'tempod: start failed'",
        deadman_cancel_all_cmd(),
    ])


# --- dead-man watchdogs -----------------------------------------------------------

DEADMAN_DIR = LAYOUT.deadman_dir
DEADMAN_LOG = LAYOUT.deadman_log
# Seconds after a fault's planned end before its watchdog reverts it. The runner's own
# revert normally comes first (it is due at the planned end; an SSH call takes 0.1-0.4 s
# here), so the margin only has to cover a slow controller; a SIGKILLed runner's fault
# then outlives its plan by at most this much.
DEADMAN_MARGIN_S = 5.0
NFT_KINDS = ("partition", "loss")
_KEY_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def tidy_table_cmd() -> str:
    """Delete table ``inet tempo_fault`` once no chain is left in it (idempotent).

    Chain deletes heal one fault kind; the empty table would otherwise outlive the run.
    A partition and a loss may coexist, so the table goes only when it has no chain.
    """
    return (f"if ! nft list table {NFT_TABLE} 2>/dev/null | grep -q chain; then "
            f"nft delete table {NFT_TABLE} 2>/dev/null; fi; true")


def _check_key(key: str) -> str:
    if not key or len(key) > 64 or not set(key) <= _KEY_OK:
        raise ValueError(f"dead-man key {key!r} must be 1-64 characters of [A-Za-z0-9_-]")
    return key


def _check_path(path: str) -> str:
    # paths go into shell commands unquoted (globs in cancel_all need that)
    if not path.startswith("/") or not set(path) <= _KEY_OK | {"/", "."}:
        raise ValueError(f"dead-man path {path!r} must be absolute, of [A-Za-z0-9_./-]")
    return path


def deadman_arm_cmd(key: str, revert_cmd: str, delay_s: float, *, directory: str = DEADMAN_DIR,
                    log: str = DEADMAN_LOG) -> str:
    """Start a detached watchdog that runs ``revert_cmd`` after ``delay_s`` seconds.

    The script is written (base64-decoded) to ``<directory>/<key>.sh`` and started with
    ``setsid`` (own session and process group, so neither the SSH session's end nor a
    SIGHUP reaches it; all fds on /dev/null, so the SSH channel does not wait for it). It records its pid
    (= its process group) in ``<key>.pid`` and waits for that file, so a cancel right
    after arming cannot miss it. When it fires it appends a JSON line to DEADMAN_LOG.
    ``sleep`` runs in the node's shell, which is never under libfaketime: real seconds.
    """
    key = _check_key(key)
    if not delay_s >= 0 or delay_s != delay_s or delay_s == float("inf"):
        raise ValueError(f"dead-man delay must be a finite number >= 0, got {delay_s!r}")
    base = f"{_check_path(directory)}/{key}"
    log = _check_path(log)
    log_dir = log.rsplit("/", 1)[0]
    script = "\n".join([
        f"echo $$ > {base}.pid",
        f"sleep {delay_s:.3f}",
        f"{{ {revert_cmd}\n}} >/dev/null 2>&1",
        "__rc=$?",
        f"mkdir -p {log_dir}",
        f"printf '{{\"t\": %s, \"key\": \"{key}\", \"event\": \"fired\", \"rc\": %s}}\\n' "
        f'"$(date +%s.%N)" "$__rc" >> {log}',
        f"rm -f {base}.pid {base}.sh",
    ])
    # base64 keeps the revert command (quotes, heredocs, newlines) out of this
    # command's own quoting entirely
    blob = base64.b64encode((script + "\n").encode()).decode()
    return "\n".join([
        f"mkdir -p {directory} && echo {blob} | base64 -d > {base}.sh",
        f"setsid sh {base}.sh >/dev/null 2>&1 </dev/null &",
        # up to 2 s for the watchdog to record its pid; say so if it never does
        f"__i=0; while [ ! -s {base}.pid ] && [ $__i -lt 20 ]; do sleep 0.1; __i=$((__i+1)); done; "
        f"[ -s {base}.pid ] || echo 'tempo: dead-man {key} did not start' >&2",
    ])


def deadman_cancel_cmd(key: str, *, directory: str = DEADMAN_DIR) -> str:
    """Kill the watchdog ``key`` (its whole process group: the shell and its sleep);
    idempotent: nothing to do when it already fired or never existed."""
    key = _check_key(key)
    base = f"{_check_path(directory)}/{key}"
    return (f"__dm=$(cat {base}.pid 2>/dev/null); "
            f'if [ -n "$__dm" ]; then kill -TERM -"$__dm" 2>/dev/null; fi; '
            f"rm -f {base}.pid {base}.sh; true")


def deadman_cancel_all_cmd(*, directory: str = DEADMAN_DIR) -> str:
    """Cancel every pending watchdog on the node (``--cleanup``)."""
    directory = _check_path(directory)
    return (f"for __f in {directory}/*.pid; do [ -e \"$__f\" ] || continue; "
            f'__dm=$(cat "$__f" 2>/dev/null); [ -n "$__dm" ] && kill -TERM -"$__dm" 2>/dev/null; '
            f'rm -f "$__f" "${{__f%.pid}}.sh"; done; true')


def guarded(f: Fault, key: str, delay_s: float | None) -> tuple[dict[str, str], dict[str, str]]:
    """(apply, revert) commands per node for ``f`` with a dead-man watchdog.

    ``delay_s``: seconds from now until the planned revert plus the margin; None (a
    fault without a planned end) arms nothing, and only ``--cleanup`` removes such a
    fault if the runner dies. Apply arms the watchdog *before* the fault, so there is no
    moment with the fault and without its watchdog. Revert cancels the watchdog first,
    in the same command: if that SSH call never arrives, the watchdog still fires.
    Network faults also drop the table once it is empty.
    """
    tidy = f"; {tidy_table_cmd()}" if f.kind in NFT_KINDS else ""
    reverts = {n: c + tidy for n, c in f.revert_cmds.items()}
    if delay_s is None:
        return dict(f.apply_cmds), reverts
    apply_: dict[str, str] = {}
    for n in list(f.apply_cmds) + [n for n in f.revert_cmds if n not in f.apply_cmds]:
        parts = []
        if n in reverts:
            parts.append(deadman_arm_cmd(key, reverts[n], delay_s))
        if n in f.apply_cmds:
            parts.append(f.apply_cmds[n])
        apply_[n] = "\n".join(parts)
    return apply_, {n: f"{deadman_cancel_cmd(key)}; {c}" for n, c in reverts.items()}
