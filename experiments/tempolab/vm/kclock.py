"""The kernel clock mode of VM guests: drift below the guest kernel, and what it delivered.

Owns the pure parts of ``clock_mode: kernel`` (docs/clock.md, "Kernel mode"):

* :func:`qemu_env` -- the drift profile's rate as the environment of the guest's qemu
  process (libfaketimeMT with the monotonic clocks faked too), so the guest calibrates
  its TSC wrongly at boot and its whole clock runs off by the rate (DESIGN.md 9);
* :func:`tsc_rate_ppm` -- the rate a boot delivered, from the guest's dmesg TSC
  calibration against the host's TSC frequency (about 1 ppm, DESIGN.md 9);
* :func:`fit_rate` -- the rate measured from outside: guest clock reads against the
  controller's clock, each bracketed by the controller's send and receive times, fitted
  by least squares on the tightest-bracketed reads;
* :func:`step_cmd` -- a *relative* step of the guest clock (latency-free, unlike
  ``date -s`` with an absolute time), used before the daemon starts to put the guest
  at the profile's initial offset (the faked RTC gives only whole seconds);
* :func:`delivered_profile` / :func:`record` -- the node's true hardware clock for the
  run folder: the analysis reads ``nodes/<node>/drift.toml``, so a kernel-mode node's
  file holds the *delivered* rate and offset, and ``kernel_clock.json`` beside it the
  requested ones with both measurements.

No SSH and no clocks here: the runner passes in what it read (``GuestClockProbe`` in
the runner side does the I/O).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from tempod.profile import DriftProfile, dump_profile

LIBFAKETIME_MT = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
CLOCK_MODES = ("faketime", "kernel")
# the rate multiplier reaches qemu as text; 9 decimals resolve 0.001 ppm
_RATE_DIGITS = 9
_TSC_REFINED = re.compile(r"tsc: Refined TSC clocksource calibration: ([0-9.]+) MHz")
_TSC_DETECTED = re.compile(r"tsc: (?:Detected|Marking TSC|Fast TSC calibration using PIT)\D*?([0-9.]+) MHz")


class KernelModeError(ValueError):
    """A profile or measurement the kernel clock mode cannot use (message says why)."""


def qemu_env(profile: DriftProfile, libfaketime: str = LIBFAKETIME_MT) -> dict[str, str]:
    """Environment of the qemu process of a kernel-mode guest with this drift profile.

    Only the rate goes below the kernel (``FAKETIME="+0 x<1+rate>"``); the initial
    offset is stepped inside the guest later (:func:`step_cmd`). A profile with later
    rate changes is refused: a running qemu's libfaketime rate cannot change.
    ``FAKETIME_DONT_FAKE_MONOTONIC`` must stay unset (with it the guest sees no drift).
    """
    if profile.changes:
        raise KernelModeError("kernel clock mode: a drift profile with rate changes cannot be applied below "
                              "a running guest kernel (qemu's libfaketime rate is fixed at its start)")
    mult = 1.0 + profile.rate_ppm * 1e-6
    if not 0.5 < mult < 1.5:
        raise KernelModeError(f"kernel clock mode: rate {profile.rate_ppm} ppm is outside what a guest can boot with")
    return {
        "LD_PRELOAD": libfaketime,
        "FAKETIME": f"+0 x{mult:.{_RATE_DIGITS}f}",
        # a SIGKILLed qemu leaves libfaketime's shared memory behind (DESIGN.md 2)
        "FAKETIME_DISABLE_SHM": "1",
    }


def tsc_mhz(dmesg: str) -> float | None:
    """The TSC frequency a kernel settled on, from its dmesg (refined value preferred)."""
    m = _TSC_REFINED.findall(dmesg)
    if m:
        return float(m[-1])
    m = _TSC_DETECTED.findall(dmesg)
    return float(m[-1]) if m else None


def tsc_rate_ppm(guest_dmesg: str, host_tsc_mhz: float) -> float | None:
    """Rate error of a guest clock (ppm, + = fast) from its TSC calibration.

    Under TCG the guest's TSC counts at the host's real rate; a guest that believes it
    counts ``g`` MHz while it really counts ``h`` runs ``h / g`` times too fast.
    """
    g = tsc_mhz(guest_dmesg)
    if g is None or not host_tsc_mhz > 0:
        return None
    return (host_tsc_mhz / g - 1.0) * 1e6


def host_tsc_mhz(dmesg: str | None = None, cpuinfo: str | None = None) -> float | None:
    """The host's TSC frequency: its own dmesg calibration, else /proc/cpuinfo's MHz."""
    if dmesg:
        v = tsc_mhz(dmesg)
        if v:
            return v
    if cpuinfo:
        m = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", cpuinfo, re.M)
        if m:
            return float(m.group(1))
    return None


@dataclass(frozen=True)
class ClockRead:
    """One read of a guest clock: controller times around it (s) and the guest's answer."""

    sent_s: float
    guest_s: float
    received_s: float

    @property
    def rtt_s(self) -> float:
        return self.received_s - self.sent_s

    @property
    def offset_s(self) -> float:
        """guest - controller at the midpoint (offset = local - reference)."""
        return self.guest_s - (self.sent_s + self.received_s) / 2.0


@dataclass(frozen=True)
class RateFit:
    rate_ppm: float
    offset_s: float      # at the last used read's midpoint
    residual_s: float    # rms of the used reads about the line
    span_s: float
    used: int
    rtt_median_s: float
    rate_se_ppm: float = math.nan  # standard error of the slope (white-noise assumption)


def best_reads(reads: Sequence[ClockRead], keep: float = 0.5) -> list[ClockRead]:
    """The reads with the tightest round trips (the rest carry queueing delay)."""
    if not reads:
        return []
    cut = sorted(r.rtt_s for r in reads)[max(0, int(math.ceil(len(reads) * keep)) - 1)]
    return [r for r in reads if r.rtt_s <= cut]


def fit_rate(reads: Sequence[ClockRead], keep: float = 0.5) -> RateFit:
    """Least-squares rate of a guest clock against the controller's (ppm, + = fast)."""
    used = best_reads(reads, keep)
    if len(used) < 3:
        raise KernelModeError(f"rate fit needs at least 3 clock reads, got {len(used)}")
    xs = [(r.sent_s + r.received_s) / 2.0 for r in used]
    ys = [r.offset_s for r in used]
    x0 = xs[0]
    xs = [x - x0 for x in xs]
    span = max(xs) - min(xs)
    if span <= 0:
        raise KernelModeError("rate fit needs reads spread over time")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    sq = [(y - (icpt + slope * x)) ** 2 for x, y in zip(xs, ys)]
    res = math.sqrt(statistics.fmean(sq))
    se = math.sqrt(sum(sq) / max(1, len(sq) - 2) / sxx)
    # offset grows by `slope` s per controller s; the guest's rate is 1 + slope
    return RateFit(rate_ppm=slope * 1e6, offset_s=icpt + slope * xs[-1], residual_s=res, span_s=span,
                   used=len(used), rtt_median_s=statistics.median(r.rtt_s for r in reads),
                   rate_se_ppm=se * 1e6)


def step_cmd(delta_s: float) -> str:
    """Shell command that steps the guest's CLOCK_REALTIME by ``delta_s`` (relative).

    Runs *inside the guest*, before tempod starts: reading and setting in one process
    leaves only microseconds between them, whatever the SSH latency. Never run on the host.
    """
    if not math.isfinite(delta_s) or abs(delta_s) > 86400 * 365:
        raise KernelModeError(f"step of {delta_s!r} s refused")
    return ("python3 -c 'import sys, time; c = time.CLOCK_REALTIME; "
            f"time.clock_settime(c, time.clock_gettime(c) + {delta_s:.9f})'")


# A guest-side clock reader for the persistent-pipe measurement: one line in, one
# time out, so each read costs one round trip of an open SSH channel (no new session).
# "step D" steps CLOCK_REALTIME by D first, in the same process, so a step computed
# from a read is applied one round trip later, not one SSH session later (at a +2 %
# guest, 15 s of session start under load put the initial offset 0.35 s off).
READER_CMD = ("python3 -u -c 'import sys, time\n"
              "c = time.CLOCK_REALTIME\n"
              "for line in sys.stdin:\n"
              "    if line.startswith(\"step \"):\n"
              "        time.clock_settime(c, time.clock_gettime(c) + float(line[5:]))\n"
              "    print(repr(time.time()), flush=True)'")


def delivered_profile(requested: DriftProfile, rate_ppm: float, offset_s: float, at_true_s: float) -> DriftProfile:
    """The node's true hardware clock: ``offset_s`` at ``at_true_s``, then ``rate_ppm``.

    Re-expressed on the requested profile's epoch so the run folder's timebase is shared.
    """
    off_at_epoch = offset_s - rate_ppm * 1e-6 * (at_true_s - requested.epoch_unix_s)
    return DriftProfile(requested.epoch_unix_s, off_at_epoch, rate_ppm)


@dataclass(frozen=True)
class KernelClockRecord:
    """What one kernel-mode boot delivered (``nodes/<node>/kernel_clock.json``)."""

    node: str
    requested_rate_ppm: float
    requested_offset_s: float
    qemu_faketime: str
    dmesg_rate_ppm: float | None
    measured_rate_ppm: float
    measured_residual_s: float
    measured_span_s: float
    measured_reads: int
    initial_offset_s: float       # after the step, measured
    at_true_s: float
    measured_rate_se_ppm: float = math.nan

    @property
    def rate_source(self) -> str:
        """The boot's TSC calibration predicts the rate to ~1 ppm (DESIGN.md 9), far
        better than 20 s of reads through a loaded host; the reads stay as the check."""
        return "dmesg" if self.dmesg_rate_ppm is not None else "measured"

    @property
    def delivered_rate_ppm(self) -> float:
        return self.dmesg_rate_ppm if self.dmesg_rate_ppm is not None else self.measured_rate_ppm

    @property
    def disagreement_ppm(self) -> float | None:
        """measured - dmesg (None without a dmesg value)."""
        return None if self.dmesg_rate_ppm is None else self.measured_rate_ppm - self.dmesg_rate_ppm


def record(run_dir: Path, rec: KernelClockRecord, requested: DriftProfile) -> DriftProfile:
    """Write the node's delivered profile (drift.toml) and its record; return the profile."""
    d = Path(run_dir) / "nodes" / rec.node
    d.mkdir(parents=True, exist_ok=True)
    prof = delivered_profile(requested, rec.delivered_rate_ppm, rec.initial_offset_s, rec.at_true_s)
    (d / "drift.toml").write_text(dump_profile(prof))
    (d / "drift.requested.toml").write_text(dump_profile(requested))
    data = {**asdict(rec), "rate_source": rec.rate_source, "delivered_rate_ppm": rec.delivered_rate_ppm,
            "disagreement_ppm": rec.disagreement_ppm}
    (d / "kernel_clock.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return prof


def require_provider(clock_mode: str, *, provider: str, shares_host_kernel: bool, has_vms: bool) -> None:
    """Refuse ``clock_mode: kernel`` anywhere but on VMs the project booted (ConfigError).

    The lab's nodes are namespaces on this host's kernel: a kernel-mode daemon there would
    discipline the host's own clock (the daemon's guard refuses too, kernelguard.py; this
    refusal comes first, before anything is created, with the reason).
    """
    from ..errors import ConfigError

    if clock_mode not in CLOCK_MODES:
        raise ConfigError(f"clock_mode: expected one of {', '.join(CLOCK_MODES)}, got {clock_mode!r}")
    if clock_mode != "kernel":
        return
    if shares_host_kernel:
        raise ConfigError(f"clock_mode kernel refused on provider {provider}: its nodes share this host's "
                          "kernel clock, which must never be adjusted; use provider vagrant (VMs) or "
                          "clock_mode faketime")
    if not has_vms:
        raise ConfigError(f"clock_mode kernel needs VMs the tempo VM provider boots (provider vagrant), "
                          f"not provider {provider}: the drift is applied below the guest kernel, by "
                          "its qemu process")


def requested_rates_ppm(names: Sequence[str], seed: int, distribution: str, max_ppm: float,
                        max_offset_s: float) -> dict[str, float]:
    """Each node's drift rate as the tempod role will draw it (its filter plugin calls
    generate_profiles per node name with the suite's seed and ranges), known before the
    guests boot: qemu needs the rate at its start. The epoch does not change the draw."""
    from tempod.profile import generate_profiles

    out = {}
    for n in names:
        p = generate_profiles([str(n)], seed, distribution, epoch_unix_s=0.0,
                              offset_s=(-max_offset_s, max_offset_s), rate_ppm=(-max_ppm, max_ppm))[str(n)]
        out[str(n)] = p.rate_ppm
    return out


def qemu_envs(names: Sequence[str], suite) -> dict[str, dict[str, str]]:
    """Per-guest qemu environment for a kernel-mode suite point (``runner.suite.Suite``)."""
    d = suite.drift
    seed = suite.seed if d.seed is None else d.seed
    rates = requested_rates_ppm(names, seed, d.distribution, d.max_ppm, d.max_offset_s)
    return {n: qemu_env(DriftProfile(0.0, 0.0, r)) for n, r in rates.items()}
