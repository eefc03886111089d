"""The local Vagrant box: a Debian 12 libvirt box built only from Debian's archive.

Owns the recipe (packages, masked units, the lab's SSH key, the guest's network and
boot settings), its hash, and the build: ``mmdebstrap`` -> ``mkfs.ext4 -d`` ->
``qemu-img convert -c`` -> ``metadata.json`` + a box Vagrantfile -> a tarred ``.box``,
with the Debian kernel and initrd copied beside it for direct kernel boot.  Everything
lives under ``CACHE`` (outside the repo), one folder per recipe hash, so a second build
and the next CI run on the same machine reuse it.  It knows nothing about libvirt
networks or running VMs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentProblem

CACHE = Path(os.environ.get("TEMPO_VM_CACHE", "/var/cache/tempo-lab"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Everything the roles need is in the image: guests have no route to any archive.
PACKAGES = (
    "linux-image-amd64", "systemd", "systemd-sysv", "udev", "dbus", "openssh-server",
    "sudo", "python3", "python3-venv", "iproute2", "nftables", "chrony", "libfaketime",
    "faketime", "adjtimex", "util-linux", "procps", "psmisc", "kmod", "ca-certificates",
)
# Time sync other than tempod is off; apt's timers would try to reach the archive.
MASKED_UNITS = (
    "systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "apt-daily.service", "apt-daily-upgrade.service", "e2scrub_all.timer", "fstrim.timer",
    "man-db.timer",
)
DISABLED_UNITS = ("chrony.service",)  # installed for the baseline issue, started by its role
IMAGE_SIZE_GB = 2
# Direct kernel boot: the command line is the VM lab's, not part of the image (nor of
# its hash). tempo.kernel_clock=allow lets the role run tempod's kernel clock backend,
# which it refuses on any kernel without it (the lab's nodes share the host's).
# On a loaded 2-core host a TCG guest's boot crawls: systemd's 90 s start and device
# timeouts and the service watchdogs (networkd's is 3 min) then fail units that would
# have come up; longer limits and no watchdogs let the boot finish.
KERNEL_CMDLINE = ("root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet tempo.kernel_clock=allow "
                  "systemd.default_timeout_start_sec=900 systemd.default_device_timeout_sec=900 "
                  "systemd.service_watchdogs=0")
# Version of the steps below; bump it when build() changes what lands in the image.
BUILD_REVISION = 1


@dataclass(frozen=True)
class Box:
    """A built box: where its files are and the name Vagrant knows it by."""

    digest: str
    dir: Path

    @property
    def name(self) -> str:
        return f"tempo/debian12-{self.digest}"

    @property
    def image(self) -> Path:
        return self.dir / "box.img"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def box_file(self) -> Path:
        return self.dir / "tempo-debian12.box"

    @property
    def ready(self) -> bool:
        return (self.dir / "READY").exists()


def ssh_key(cache: Path = CACHE) -> Path:
    """The lab's VM key (private path); created once, kept with the cache."""
    key = cache / "vm-ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tempo-lab-vm",
                        "-f", str(key)], check=True)
    return key


def recipe(pubkey: str) -> dict:
    return {"suite": SUITE, "mirror": MIRROR, "packages": sorted(PACKAGES),
            "masked": sorted(MASKED_UNITS), "disabled": sorted(DISABLED_UNITS),
            "size_gb": IMAGE_SIZE_GB, "pubkey": pubkey.strip(),
            "revision": BUILD_REVISION}


def recipe_digest(rec: dict) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:12]


def box_for(cache: Path = CACHE) -> tuple[Box, dict]:
    pub = (ssh_key(cache).with_suffix(".pub")).read_text()
    rec = recipe(pub)
    d = recipe_digest(rec)
    return Box(d, cache / "box" / d), rec


TOOLS = {"mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs", "qemu-img": "qemu-utils",
         "vagrant": "vagrant"}


def missing_tools() -> list[str]:
    return [f"{t} (apt package {p})" for t, p in TOOLS.items() if shutil.which(t) is None]


# The customize hook runs inside the new root ($1) after packages are installed.
_NETWORK = """[Match]
Name=e*

[Network]
DHCP=ipv4
LinkLocalAddressing=no

[DHCPv4]
UseDomains=false
"""
_HOSTKEYS = """[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""
_BOX_VAGRANTFILE = """Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
  end
end
"""


def _customize_script(pubkey: str) -> str:
    masks = " ".join(MASKED_UNITS)
    disables = " ".join(DISABLED_UNITS)
    return f"""set -e
R="$1"
echo tempo-vm > "$R/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\\n' > "$R/etc/fstab"
mkdir -p "$R/etc/systemd/network" "$R/etc/systemd/system/ssh.service.d"
cat > "$R/etc/systemd/network/10-dhcp.network" <<'EOF'
{_NETWORK}EOF
cat > "$R/etc/systemd/system/ssh.service.d/hostkeys.conf" <<'EOF'
{_HOSTKEYS}EOF
# every guest gets its own host keys at first boot
rm -f "$R"/etc/ssh/ssh_host_*
chroot "$R" systemctl enable systemd-networkd.service ssh.service
chroot "$R" systemctl mask {masks}
chroot "$R" systemctl disable {disables}
chroot "$R" useradd -m -s /bin/bash -G sudo vagrant || true
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$R/etc/sudoers.d/vagrant"
chmod 0440 "$R/etc/sudoers.d/vagrant"
for home in /root /home/vagrant; do
  mkdir -p "$R$home/.ssh"
  echo '{pubkey.strip()}' > "$R$home/.ssh/authorized_keys"
  chmod 700 "$R$home/.ssh"; chmod 600 "$R$home/.ssh/authorized_keys"
done
chroot "$R" chown -R vagrant:vagrant /home/vagrant/.ssh
chroot "$R" passwd -d root >/dev/null
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin
: > "$R/etc/machine-id"
"""


Step = Callable[[str], None]


def _run(argv: list[str], step: Step, label: str, **kw) -> None:
    """Run a build step, streaming its last output line into the progress display."""
    step(label)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = (tail + [line])[-20:]
            step(f"{label}: {line[:100]}")
    if proc.wait() != 0:
        raise EnvironmentProblem(f"box build step {label!r} failed (exit {proc.returncode}):\n"
                                 + "\n".join(tail))


def build(cache: Path = CACHE, step: Step = lambda m: None, force: bool = False) -> Box:
    """Build the box for the current recipe unless the cache already holds it.

    One build at a time per cache (a lock file): a second caller waits, then finds it.
    """
    box, _ = box_for(cache)
    if box.ready and not force:
        step(f"box {box.name} cached in {box.dir}")
        return box
    box.dir.parent.mkdir(parents=True, exist_ok=True)
    with open(box.dir.parent / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            step("another box build is running: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
            force = False
        return _build_locked(cache, step, force)


def _build_locked(cache: Path, step: Step, force: bool) -> Box:
    box, rec = box_for(cache)
    if box.ready and not force:
        step(f"box {box.name} cached in {box.dir}")
        return box
    if os.geteuid() != 0:
        raise EnvironmentProblem("building the VM box needs root (mmdebstrap --mode=root)")
    miss = missing_tools()
    if miss:
        raise EnvironmentProblem("missing for the VM box: " + ", ".join(miss)
                                 + " (bash scripts/bootstrap-vm.sh installs them)")
    work = box.dir.with_name(box.dir.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(box.dir, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.monotonic()
    try:
        root = work / "rootfs"
        hook = work / "customize.sh"
        hook.write_text(_customize_script(rec["pubkey"]))
        _run(["mmdebstrap", "--variant=apt", "--mode=root", "--format=directory",
              "--include=" + ",".join(PACKAGES),
              "--customize-hook=sh " + str(hook) + ' "$1"',
              SUITE, str(root), MIRROR], step, "mmdebstrap (Debian archive)")
        vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
        initrd = sorted((root / "boot").glob("initrd.img-*"))
        if not vmlinuz or not initrd:
            raise EnvironmentProblem("the rootfs has no kernel/initrd in /boot")
        shutil.copy2(vmlinuz[-1], work / "vmlinuz")
        shutil.copy2(initrd[-1], work / "initrd.img")
        raw = work / "root.raw"
        _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw),
              f"{IMAGE_SIZE_GB}G"], step, "mkfs.ext4 -d")
        shutil.rmtree(root)
        _run(["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(work / "box.img")],
             step, "qemu-img convert -c")
        raw.unlink()
        (work / "metadata.json").write_text(json.dumps(
            {"provider": "libvirt", "format": "qcow2", "virtual_size": IMAGE_SIZE_GB}))
        (work / "Vagrantfile").write_text(_BOX_VAGRANTFILE)
        (work / "recipe.json").write_text(json.dumps(rec, indent=2, sort_keys=True))
        step("tar the .box")
        with tarfile.open(work / "tempo-debian12.box", "w") as tar:
            for f in ("metadata.json", "Vagrantfile", "box.img"):
                tar.add(work / f, arcname=f)
        (work / "build_s").write_text(f"{time.monotonic() - t0:.1f}\n")
        (work / "READY").write_text(box.name + "\n")
        work.rename(box.dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    step(f"box {box.name} built in {time.monotonic() - t0:.0f} s")
    return box


def vagrant_env(cache: Path = CACHE) -> dict[str, str]:
    """Vagrant's home outside the repo and the user's ~ (boxes persist with the cache)."""
    return dict(os.environ, VAGRANT_HOME=str(cache / "vagrant.d"),
                VAGRANT_DEFAULT_PROVIDER="libvirt", VAGRANT_CHECKPOINT_DISABLE="1",
                VAGRANT_BOX_UPDATE_CHECK_DISABLE="1")


def add_to_vagrant(box: Box, cache: Path = CACHE, step: Step = lambda m: None) -> None:
    """``vagrant box add`` unless Vagrant already has this box (its name carries the hash)."""
    env = vagrant_env(cache)
    listed = subprocess.run(["vagrant", "box", "list", "--machine-readable"], env=env,
                            capture_output=True, text=True)
    if f",box-name,{box.name}\n" in listed.stdout + "\n":
        step(f"vagrant already has {box.name}")
        return
    _run(["vagrant", "box", "add", "--force", "--name", box.name, str(box.box_file)], step,
         "vagrant box add", env=env)


def vagrant_box_image(box: Box, cache: Path = CACHE) -> Path:
    """Where Vagrant unpacked the box's disk (the source vagrant-libvirt uploads)."""
    return (cache / "vagrant.d" / "boxes" / box.name.replace("/", "-VAGRANTSLASH-") / "0"
            / "libvirt" / "box.img")
