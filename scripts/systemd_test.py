#!/usr/bin/env python3
"""Runs the packaged agent and collector under a real systemd (issue "Reliability and security", item 10).

CI machines have no systemd as PID 1, so scripts/check_packages.py can only inspect the unit.
This script boots a minimal Debian 12 under systemd-nspawn, installs the project's .deb in it and
watches the unit live. What it proves, each check able to fail:

- the .deb installs on a bare Debian 12 (its dependencies, the vpce-probe user, /var/lib/vpce-probe);
- a start with the shipped config (no bucket or table) fails with exit 2 and one line in the
  journal, and is not restarted (still not once RestartSec has passed);
- with a config naming a bucket, `systemctl start` reaches `active`: the agent sent READY=1
  (Type=notify);
- the agent pings the watchdog (a drop-in sets WatchdogSec=4s): WatchdogTimestamp advances and
  the same main process is still running after several periods; a frozen one (SIGSTOP) is
  killed on "Watchdog timeout" and restarted (Restart=on-failure);
- the sandbox is in force on the live process (/proc/<pid>/status: Seccomp 2, NoNewPrivs 1,
  CapEff 0, the vpce-probe user), writes outside /var/lib/vpce-probe fail (a second dir sink
  pointing to a read-only directory keeps its reports in the spool), and
  `systemd-analyze security vpce-probe.service` scores the loaded unit at 2.0 or below;
- the state directory, the spool and the dir sink's report files are written, the metrics
  endpoint answers on loopback, the journal has the agent's lines;
- `systemctl reload` with a good config applies it, with a bad one keeps the old config (same
  main process, still active, `reload refused` in the journal);
- `systemctl stop` ends the service cleanly well within TimeoutStopSec;
- the collector's .deb, in the same container: a start without its tokens file fails with exit 2
  and is not restarted; with tokens it answers /healthz on loopback, runs sandboxed (Seccomp,
  NoNewPrivs, its own user, no capability, exposure 2.0 or below), stores the reports the agent
  of the same container ships to it over HTTP, reloads in place and stops cleanly.

The probe targets nothing reachable: the container has only loopback (--private-network), so
DNS, IMDS and TCP fail fast and every run ends with problems. The point is the unit's behaviour,
not a healthy verdict.

The root file system (debootstrap --variant=minbase bookworm plus systemd, systemd-sysv, dbus,
libnss-systemd, procps, iproute2, ca-certificates) is cached under /var/cache/vpce-probe-test/ (VPCE_PROBE_TEST_CACHE
overrides it), keyed by what goes into it; it is built in a temporary directory and renamed into
place, so an interrupted build is never reused. Every boot is --volatile=overlay: the cached root
stays clean. Measured (docs/testing.md): cold, the root file system takes 3-5 min to build on
a busy 2-core machine; warm, the whole test takes about 50 s.

Usage: python3 scripts/systemd_test.py [--deb PATH]   (as root; without --deb it uses the .deb
scripts/check_packages.py left in target/package-check/out/, so scripts/test.sh runs it after
that script). Tools: systemd-nspawn (systemd-container), debootstrap, nsenter (util-linux);
scripts/install-deps.sh installs them.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("VPCE_PROBE_TEST_CACHE", "/var/cache/vpce-probe-test"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# ca-certificates: every real instance has trust roots (without any, the SDK's TLS setup in a
# debug build stops on a debug assertion).
PACKAGES = ["systemd", "systemd-sysv", "dbus", "libnss-systemd", "procps", "iproute2", "ca-certificates"]
# Bump when the way the root file system is prepared changes: the cache key includes it.
RECIPE = 1
MAX_EXPOSURE = 2.0
# The drop-in's watchdog period: short, so that a few periods pass within the test.
WATCHDOG_SEC = 4
UNIT = "vpce-probe.service"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

failures: list[str] = []
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def check(cond: bool, what: str) -> bool:
    print(("  ok    " if cond else "  FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def fail_now(message: str) -> None:
    """A step the rest depends on did not work: stop with one clear line (and what we know)."""
    sys.exit(f"systemd_test: {message}")


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run([str(c) for c in cmd], **kw)


# --- The cached root file system --------------------------------------------------------------
def rootfs_key() -> str:
    recipe = json.dumps([RECIPE, SUITE, MIRROR, "minbase", sorted(PACKAGES)])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def prepare_rootfs() -> Path:
    """The cached root file system, built first if missing. Builds run under an exclusive lock
    in a temporary directory that is renamed into place only once complete."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = rootfs_key()
    final = CACHE / f"{SUITE}-{key}"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Under the lock nobody else is building: what a killed build left is garbage.
        for leftover in CACHE.glob(".build-*"):
            say(f"removing an interrupted build: {leftover}")
            shutil.rmtree(leftover, ignore_errors=True)
        if (final / "etc" / "os-release").is_file():
            say(f"root file system: cached {final}")
            return final
        for stale in CACHE.glob(f"{SUITE}-*"):
            say(f"removing a root file system of another recipe: {stale}")
            shutil.rmtree(stale, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
        say(f"root file system: building {SUITE} (minbase + {', '.join(PACKAGES)}); a few minutes, ~220 MB")
        t0 = time.monotonic()
        p = run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, build, MIRROR],
            timeout=900,
        )
        if p.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            tail = "\n".join((p.stdout + p.stderr).splitlines()[-15:])
            fail_now(f"debootstrap exited {p.returncode} (is {MIRROR} reachable?)\n{tail}")
        # Waits forever for a network a container with only loopback never gets.
        wait_online = build / "etc/systemd/system/systemd-networkd-wait-online.service"
        wait_online.unlink(missing_ok=True)
        wait_online.symlink_to("/dev/null")
        # Downloaded packages are not needed once installed.
        for deb in (build / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        os.rename(build, final)
        say(f"root file system: built in {time.monotonic() - t0:.0f} s")
        return final



# --- The container ----------------------------------------------------------------------------
class Container:
    """A booted container: systemd-nspawn in the background, its PID 1 entered with nsenter."""

    def __init__(self, rootfs: Path, stage: Path):
        self.stage = stage
        self.log_path = stage / "nspawn.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                "systemd-nspawn", "--quiet", "--directory", str(rootfs), "--boot",
                # The cached root stays clean: every change goes to a tmpfs that dies with it.
                "--volatile=overlay", "--private-network",
                # The host has no systemd to register with or to make a scope unit.
                "--register=no", "--keep-unit",
                f"--machine=vpce-probe-test-{os.getpid()}", "--console=read-only",
                f"--bind-ro={stage / 'in'}:/mnt/vpce-test",
                "--", "systemd.firstboot=off",
            ],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.pid1 = self._find_pid1()

    def _find_pid1(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail_now(f"systemd-nspawn exited {self.proc.returncode} before booting:\n{self.log_tail()}")
            for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for child in children:
                    try:
                        status = Path(f"/proc/{child}/status").read_text()
                    except OSError:
                        continue
                    # PID 1 of its own namespace: the container's systemd.
                    m = re.search(r"^NSpid:\s+\d+\s+1$", status, flags=re.M)
                    if m:
                        return int(child)
            time.sleep(0.05)
        fail_now(f"no container PID 1 within 30 s:\n{self.log_tail()}")
        return 0

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.closed:
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def sh(self, script: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """A shell command inside the container (all its namespaces, its root, a clean env)."""
        return run(
            ["nsenter", "-t", self.pid1, "-m", "-u", "-i", "-n", "-p", "-r", "-w",
             "env", "-i", f"PATH={PATH_ENV}", "LANG=C.UTF-8", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=",
             "sh", "-c", script],
            timeout=timeout, input=input,
        )

    def must(self, script: str, timeout: float = 60, input: str | None = None) -> str:
        p = self.sh(script, timeout=timeout, input=input)
        if p.returncode != 0:
            fail_now(f"in the container, `{script}` exited {p.returncode}:\n{p.stdout}{p.stderr}")
        return p.stdout

    def write(self, path: str, content: str, mode: str = "0644") -> None:
        self.must(f"mkdir -p \"$(dirname {path})\" && cat > {path} && chmod {mode} {path}", input=content)

    def http_get(self, url: str) -> tuple[int, str]:
        """GET from inside the container's network namespace (the host's python, its loopback)."""
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n"
        )
        p = run(["nsenter", "-t", self.pid1, "-n", sys.executable, "-c", code, url], timeout=15)
        if p.returncode != 0:
            return 0, (p.stderr.strip().splitlines() or [""])[-1]
        status, _, body = p.stdout.partition("\n")
        return int(status), body

    def stop(self) -> None:
        if self.proc.poll() is None:
            # nspawn turns SIGTERM into an orderly poweroff of the container.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()


def seconds(value: str) -> float:
    """A systemd time span as `systemctl show` prints it (10s, 1min 30s, 500ms)."""
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(us|ms|min|s|h)?", value):
        total += float(num) * {"us": 1e-6, "ms": 1e-3, "s": 1, "": 1, "min": 60, "h": 3600}[unit]
    return total


def unit_show(c: Container, *props: str, unit: str = UNIT) -> dict[str, str]:
    out = c.must(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(c: Container, unit: str = UNIT) -> str:
    return c.must(f"journalctl --no-pager -q -o cat -u {unit}")


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of one series of a Prometheus text exposition, None if absent."""
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)}\s+(\S+)$", text, flags=re.M)
    return float(m.group(1)) if m else None


def wait_for(what: str, probe, timeout: float, every: float = 0.25):
    """Calls probe() until it returns something true; that value, or None after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            if not value:
                say(f"gave up waiting {timeout:.0f} s for {what}")
            return value
        time.sleep(every)


# The agent's configuration inside the container. Nothing is reachable (only loopback): every
# run fails fast and ends with problems. Two dir sinks: one in the state directory, one in a
# directory the service's user owns but the sandbox makes read-only (ProtectSystem=strict).
CONFIG = """\
interval = "{interval}"
jitter = "1s"

[probe]
buckets = ["vpce-probe-systemd-test"]
region = "eu-west-1"
timeout = "1s"
deadline = "5s"
control_plane = false

[metrics]
listen = "127.0.0.1:9731"

[shipping]
retry_initial = "1s"
retry_max = "2s"

[[sink]]
type = "dir"
name = "reports"
path = "/var/lib/vpce-probe/reports"

[[sink]]
type = "dir"
name = "readonly"
path = "/srv/vpce-probe-readonly"
"""
DROP_IN = f"""\
[Service]
# Short, so that several periods pass during the test, and a restart would come soon.
WatchdogSec={WATCHDOG_SEC}s
RestartSec=2s
"""


def test_unit(c: Container, deb_name: str) -> None:
    say("boot")

    def booted():
        # "offline" until the manager answers on its bus; then --wait waits for the boot's end.
        out = c.sh("systemctl is-system-running --wait", timeout=90).stdout.strip()
        return out if out not in ("", "offline", "unknown") else None

    state = wait_for("the container's systemd", booted, timeout=60, every=0.1) or "offline"
    check(state in ("running", "degraded"), f"the container's systemd finished booting ({state})")
    if state == "degraded":
        print(c.sh("systemctl --failed --no-legend").stdout)

    say("install the .deb")
    p = c.sh(f"dpkg -i /mnt/vpce-test/{deb_name}", timeout=120)
    if not check(p.returncode == 0, f"dpkg -i {deb_name} on a bare Debian 12"):
        fail_now(f"dpkg -i exited {p.returncode}:\n{p.stdout}{p.stderr}")
    passwd = c.sh("getent passwd vpce-probe").stdout.strip()
    check(re.match(r"^vpce-probe:x:\d+:\d+:", passwd) is not None, f"the vpce-probe user exists ({passwd})")
    uid = passwd.split(":")[2] if passwd else "?"
    check(c.sh("test -d /var/lib/vpce-probe").returncode == 0, "/var/lib/vpce-probe exists")
    enabled = c.sh(f"systemctl is-enabled {UNIT}").stdout.strip()
    active = c.sh(f"systemctl is-active {UNIT}").stdout.strip()
    check((enabled, active) == ("disabled", "inactive"), f"the package neither enables nor starts the service ({enabled}, {active})")

    say("a start with the shipped config (no bucket or table): exit 2, failed, not restarted")
    c.write(f"/etc/systemd/system/{UNIT}.d/test.conf", DROP_IN)
    c.must("systemctl daemon-reload")
    p = c.sh(f"systemctl start {UNIT}", timeout=60)
    refused_at = time.monotonic()
    props = unit_show(c, "ActiveState", "Result", "NRestarts", "ExecMainStatus", "RestartUSec")
    check(p.returncode != 0 and props.get("ActiveState") == "failed" and props.get("ExecMainStatus") == "2",
          f"refused to start: exit 2, failed ({props})")
    log = journal(c)
    check("nothing to probe" in log, "the journal says why: 'nothing to probe'")
    restart_sec = seconds(props.get("RestartUSec", "10s"))

    # A restart would come RestartSec after the failure: wait that long, then look again.
    time.sleep(max(0.0, refused_at + restart_sec + 1 - time.monotonic()))
    props = unit_show(c, "ActiveState", "NRestarts")
    starts = journal(c).count("nothing to probe")
    check(props == {"ActiveState": "failed", "NRestarts": "0"} and starts == log.count("nothing to probe"),
          f"not restarted after RestartSec={restart_sec:.0f}s ({props}, {starts} refusal(s) in the journal)")
    c.must(f"systemctl reset-failed {UNIT}")

    say("configure: a bucket, two dir sinks")
    c.write("/etc/vpce-probe/config.toml", CONFIG.format(interval="10s"))
    c.must("install -d -o vpce-probe -g vpce-probe -m 0750 /var/lib/vpce-probe/reports")
    c.must("install -d -o vpce-probe -g vpce-probe -m 0750 /srv/vpce-probe-readonly")

    say("systemctl start (Type=notify: returns once the agent sent READY=1)")
    t0 = time.monotonic()
    p = c.sh(f"systemctl start {UNIT}", timeout=60)
    props = unit_show(c, "ActiveState", "SubState", "MainPID", "WatchdogUSec", "NRestarts")
    if not check(p.returncode == 0 and props.get("ActiveState") == "active",
                 f"started, active in {time.monotonic() - t0:.1f} s ({props})"):
        print(c.sh(f"systemctl status --no-pager {UNIT}; journalctl --no-pager -u {UNIT}").stdout)
        fail_now("the unit did not become active; the journal is above")
    check(props.get("NRestarts") == "0", f"started at the first attempt (NRestarts={props.get('NRestarts')})")
    check(props.get("WatchdogUSec") in (f"{WATCHDOG_SEC}s", str(WATCHDOG_SEC * 1_000_000)),
          f"the drop-in's WatchdogSec={WATCHDOG_SEC}s is in force ({props.get('WatchdogUSec')})")
    pid = props["MainPID"]
    # Accepted but not enforced in a container here (no delegated cgroup controllers): checked as
    # what systemd loaded, not by tripping them.
    limits = unit_show(c, "MemoryMax", "MemoryHigh", "TasksMax")
    check(limits == {"MemoryMax": str(256 << 20), "MemoryHigh": str(192 << 20), "TasksMax": "128"},
          f"the resource limits are loaded ({limits})")

    say("the sandbox on the live process")
    status = c.sh(f"cat /proc/{pid}/status").stdout
    if not check(bool(status), f"the main process {pid} is still there"):
        print("\n".join(journal(c).splitlines()[-30:]))
        fail_now("the agent died after READY; its journal is above")
    field = dict(re.findall(r"^(\w+):\s*(.*)$", status, flags=re.M))
    check(field.get("Seccomp") == "2", f"Seccomp: 2, a system-call filter (got {field.get('Seccomp')})")
    check(field.get("NoNewPrivs") == "1", f"NoNewPrivs: 1 (got {field.get('NoNewPrivs')})")
    check(field.get("Uid", "").split() == [uid] * 4, f"runs as the vpce-probe user, uid {uid} (Uid: {field.get('Uid')})")
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        check(int(field.get(cap, "1"), 16) == 0, f"{cap}: 0, no capability (got {field.get(cap)})")
    user = c.sh(f"ps -o user= -p {pid}").stdout.strip()
    check(user == "vpce-probe", f"ps shows the vpce-probe user ({user})")
    mounts = c.must(f"cat /proc/{pid}/mountinfo")
    check(re.search(r" / / ro[ ,]", mounts) is not None, "the root file system is read-only for it (ProtectSystem=strict)")

    say("the first run: the dir sink's report, the spool, the metrics")
    report = wait_for(
        "a report in /var/lib/vpce-probe/reports",
        lambda: c.sh("ls /var/lib/vpce-probe/reports/ | grep -E '^[A-Za-z0-9-]+\\.json$' | head -1").stdout.strip(),
        timeout=30,
    )
    if check(bool(report), f"the dir sink wrote a report: /var/lib/vpce-probe/reports/{report}"):
        body = json.loads(c.must(f"cat /var/lib/vpce-probe/reports/{report}"))
        report_id = body.get("report_id", "")
        check(report == f"{report_id}.json", f"named after its report_id ({report_id})")
        check(body.get("verdict", {}).get("status") in ("problems", "error", "unhealthy") or bool(body.get("findings")),
              f"a run with nothing reachable reports problems (verdict {body.get('verdict', {}).get('status')}, {len(body.get('findings', []))} findings)")
        mode_owner = c.must(f"stat -c '%a %U' /var/lib/vpce-probe/reports/{report}").strip()
        check(mode_owner == "600 vpce-probe", f"the report is 0600, owned by vpce-probe: {mode_owner}")
        spool = c.must("ls -A /var/lib/vpce-probe/spool").split()
        entry = [n for n in spool if n.endswith(f"-{report_id}.json")]
        check(".lock" in spool, f"the spool holds its lock file ({spool})")
        check(len(entry) == 1 and f"{entry[0][:-5]}.ack.reports" in spool,
              f"the spool keeps the report for the read-only sink, acknowledged by 'reports' ({spool})")
    state_mode = c.must("stat -c '%a %U:%G' /var/lib/vpce-probe").strip()
    check(state_mode == "750 vpce-probe:vpce-probe", f"StateDirectory /var/lib/vpce-probe is 750 vpce-probe:vpce-probe ({state_mode})")
    check(c.sh("ls -A /srv/vpce-probe-readonly").stdout.strip() == "", "nothing was written to the read-only sink's directory")

    def failures_counted():
        code, text = c.http_get("http://127.0.0.1:9731/metrics")
        return text if code == 200 and (metric(text, "vpce_probe_ship_failures_total", '{sink="readonly"}') or 0) > 0 else None

    text = wait_for("a failed delivery to the read-only sink in the metrics", failures_counted, timeout=15) or ""
    check((metric(text, "vpce_probe_reports_shipped_total", '{sink="reports"}') or 0) >= 1,
          "metrics: vpce_probe_reports_shipped_total{sink=\"reports\"} >= 1")
    check((metric(text, "vpce_probe_ship_failures_total", '{sink="readonly"}') or 0) >= 1,
          "metrics: vpce_probe_ship_failures_total{sink=\"readonly\"} >= 1 (EROFS under ProtectSystem=strict)")
    check(metric(text, "vpce_probe_runs_total", '{result="problems"}') is not None,
          "metrics: vpce_probe_runs_total{result=\"problems\"}")
    code, _ = c.http_get("http://127.0.0.1:9731/healthz")
    check(code == 200, f"/healthz answers 200 ({code})")
    log = journal(c)
    if not check("Read-only file system" in log, "the journal says why the read-only sink fails (Read-only file system)"):
        print("\n".join(log.splitlines()[-20:]))

    say(f"the watchdog: {3 * WATCHDOG_SEC} s, three periods of WatchdogSec={WATCHDOG_SEC}s")
    before = unit_show(c, "WatchdogTimestampMonotonic")
    time.sleep(3 * WATCHDOG_SEC)
    after = unit_show(c, "WatchdogTimestampMonotonic", "MainPID", "ActiveState", "NRestarts")
    t_before = int(before.get("WatchdogTimestampMonotonic") or 0)
    t_after = int(after.get("WatchdogTimestampMonotonic") or 0)
    check(t_after > t_before > 0, f"WatchdogTimestamp advanced ({t_before} -> {t_after} µs)")
    check(
        (after.get("MainPID"), after.get("ActiveState"), after.get("NRestarts")) == (pid, "active", "0"),
        f"not killed by the watchdog: same main PID {pid}, active, no restart ({after})",
    )

    say("systemctl reload with a good config")
    c.write("/etc/vpce-probe/config.toml", CONFIG.format(interval="11s"))
    p = c.sh(f"systemctl reload {UNIT}", timeout=60)
    reloaded = wait_for("'configuration reloaded' in the journal", lambda: "configuration reloaded" in journal(c), timeout=15)
    props = unit_show(c, "MainPID", "ActiveState")
    check(p.returncode == 0 and bool(reloaded) and props == {"MainPID": pid, "ActiveState": "active"},
          f"reloaded in place: 'configuration reloaded' in the journal, same PID, active ({props})")

    say("systemctl reload with a bad config")
    c.write("/etc/vpce-probe/config.toml", CONFIG.format(interval="sixty"))
    p = c.sh(f"systemctl reload {UNIT}", timeout=60)
    refused = wait_for("'reload refused' in the journal", lambda: "reload refused" in journal(c), timeout=15)
    props = unit_show(c, "MainPID", "ActiveState", "StatusText")
    check(bool(refused) and (props.get("MainPID"), props.get("ActiveState")) == (pid, "active"),
          f"refused, the old config stays: 'reload refused' in the journal, same PID, active")
    check("reload refused" in props.get("StatusText", "") and "interval" in props.get("StatusText", ""),
          f"systemctl status says so: {props.get('StatusText')}")
    runs_before = metric(c.http_get("http://127.0.0.1:9731/metrics")[1], "vpce_probe_runs_total", '{result="problems"}') or 0

    def another_run():
        text = c.http_get("http://127.0.0.1:9731/metrics")[1]
        return (metric(text, "vpce_probe_runs_total", '{result="problems"}') or 0) > runs_before and text

    text = wait_for("a run after the refused reload", another_run, timeout=25) or ""
    check(bool(text), "the agent keeps probing on the old config after the refused reload")
    check(metric(text, "vpce_probe_config_reloads_total", '{result="ok"}') == 1
          and metric(text, "vpce_probe_config_reloads_total", '{result="error"}') == 1,
          "metrics: vpce_probe_config_reloads_total ok 1, error 1")

    say("systemd-analyze security (the loaded unit, not the file)")
    out = c.sh(f"systemd-analyze security --no-pager {UNIT}").stdout
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    score = float(m.group(1)) if m else 99.0
    check(score <= MAX_EXPOSURE, f"exposure {score} <= {MAX_EXPOSURE}")

    say("systemctl stop (TimeoutStopSec=20s)")
    t0 = time.monotonic()
    p = c.sh(f"systemctl stop {UNIT}", timeout=60)
    took = time.monotonic() - t0
    props = unit_show(c, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    check(p.returncode == 0 and took < 15 and props.get("ActiveState") == "inactive" and props.get("Result") == "success",
          f"stopped cleanly in {took:.1f} s ({props})")
    log = journal(c)
    for line in ("agent started", "systemd watchdog enabled", "stopping", "agent stopped"):
        check(line in log, f"the journal has '{line}'")
    spool = c.must("ls -A /var/lib/vpce-probe/spool").split()
    kept = [n for n in spool if re.fullmatch(r"\d{16}-[A-Za-z0-9-]+\.json", n)]
    check(len(kept) >= 1, f"the reports the read-only sink never took stay in the spool ({len(kept)})")

    say("start again (with a good config): the spool is picked up")
    c.write("/etc/vpce-probe/config.toml", CONFIG.format(interval="10s"))
    p = c.sh(f"systemctl start {UNIT}", timeout=60)
    found = wait_for("'reports found in the spool' in the journal", lambda: "reports found in the spool" in journal(c), timeout=15)
    check(p.returncode == 0 and bool(found), "restarted; the journal says it found the spooled reports")

    say("a frozen agent: the watchdog kills it and Restart=on-failure brings it back")
    # The control for the watchdog check above: without pings the unit does not survive.
    frozen = unit_show(c, "MainPID")["MainPID"]
    c.must(f"kill -STOP {frozen}")

    def replaced():
        props = unit_show(c, "MainPID", "ActiveState", "NRestarts")
        fresh = props.get("MainPID") not in ("0", frozen) and props.get("ActiveState") == "active"
        return props if fresh and "Watchdog timeout" in c.sh(f"journalctl --no-pager -q -u {UNIT}").stdout else None

    props = wait_for("a new main process after the watchdog timeout", replaced, timeout=6 * WATCHDOG_SEC, every=0.5)
    check(props is not None, f"killed on 'Watchdog timeout' and restarted with a new main PID ({props})")
    c.sh(f"systemctl stop {UNIT}", timeout=60)
    if failures:
        print("--- journal of the unit ---")
        print("\n".join(journal(c).splitlines()[-40:]))


C_UNIT = "vpce-collector.service"
C_TOKEN = "fleet-token-0123456789abcdef"
# The agent ships to the collector over loopback (its dir sink stays: the first test's config).
AGENT_TO_COLLECTOR = """
[[sink]]
type = "http"
name = "collector"
url = "http://127.0.0.1:8480/v1/reports"
bearer_token_file = "/etc/vpce-probe/collector.token"
"""


def test_collector_unit(c: Container, deb_name: str) -> None:
    """The collector's package and unit, live: refuses without tokens (exit 2, not restarted),
    starts with them, stores what the agent of the same machine ships, keeps its sandbox,
    reloads in place and stops cleanly."""
    say("install the collector's .deb")
    p = c.sh(f"dpkg -i /mnt/vpce-test/{deb_name}", timeout=120)
    if not check(p.returncode == 0, f"dpkg -i {deb_name}"):
        fail_now(f"dpkg -i exited {p.returncode}:\n{p.stdout}{p.stderr}")
    passwd = c.sh("getent passwd vpce-collector").stdout.strip()
    check(re.match(r"^vpce-collector:x:\d+:\d+:", passwd) is not None, f"the vpce-collector user exists ({passwd})")
    uid = passwd.split(":")[2] if passwd else "?"
    state = (c.sh(f"systemctl is-enabled {C_UNIT}").stdout.strip(), c.sh(f"systemctl is-active {C_UNIT}").stdout.strip())
    check(state == ("disabled", "inactive"), f"the package neither enables nor starts the collector {state}")

    say("the collector without its tokens file: exit 2, failed, not restarted")
    # Type=exec: `systemctl start` returns once the binary runs; the refusal comes just after.
    c.sh(f"systemctl start {C_UNIT}", timeout=60)
    props = wait_for(
        "the collector's refusal",
        lambda: (lambda p: p if p.get("ActiveState") == "failed" else None)(
            unit_show(c, "ActiveState", "ExecMainStatus", "RestartUSec", unit=C_UNIT)),
        timeout=15,
    ) or {}
    refused_at = time.monotonic()
    check(props.get("ActiveState") == "failed" and props.get("ExecMainStatus") == "2",
          f"refused to start: exit 2, failed ({props})")
    log = journal(c, C_UNIT)
    check("/etc/vpce-collector/tokens" in log, "the journal names the missing tokens file")
    check("\x1b[" not in log, "the journal holds plain text (no terminal colour codes)")
    time.sleep(max(0.0, refused_at + seconds(props.get("RestartUSec", "5s")) + 1 - time.monotonic()))
    props = unit_show(c, "ActiveState", "NRestarts", unit=C_UNIT)
    check(props == {"ActiveState": "failed", "NRestarts": "0"}, f"not restarted after RestartSec ({props})")
    c.must(f"systemctl reset-failed {C_UNIT}")

    say("tokens in place: the collector starts and answers on loopback")
    c.write("/etc/vpce-collector/tokens", f"# label token\nfleet {C_TOKEN}\n", mode="0640")
    c.must("chgrp vpce-collector /etc/vpce-collector/tokens")
    p = c.sh(f"systemctl start {C_UNIT}", timeout=60)
    healthy = wait_for("the collector's /healthz", lambda: c.http_get("http://127.0.0.1:8480/healthz")[0] == 200, timeout=20)
    props = unit_show(c, "ActiveState", "MainPID", "NRestarts", unit=C_UNIT)
    if not check(p.returncode == 0 and bool(healthy) and props.get("ActiveState") == "active",
                 f"active, /healthz answers 200 ({props})"):
        print("\n".join(journal(c, C_UNIT).splitlines()[-20:]))
        fail_now("the collector did not come up; its journal is above")
    pid = props["MainPID"]
    field = dict(re.findall(r"^(\w+):\s*(.*)$", c.sh(f"cat /proc/{pid}/status").stdout, flags=re.M))
    check(field.get("Seccomp") == "2" and field.get("NoNewPrivs") == "1",
          f"Seccomp 2, NoNewPrivs 1 (got {field.get('Seccomp')}, {field.get('NoNewPrivs')})")
    check(field.get("Uid", "").split() == [uid] * 4, f"runs as the vpce-collector user, uid {uid} (Uid: {field.get('Uid')})")
    check(int(field.get("CapEff", "1"), 16) == 0, f"CapEff: 0 (got {field.get('CapEff')})")
    out = c.sh(f"systemd-analyze security --no-pager {C_UNIT}").stdout
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    score = float(m.group(1)) if m else 99.0
    check(score <= MAX_EXPOSURE, f"collector exposure {score} <= {MAX_EXPOSURE}")

    say("the agent ships to it: the collector stores the agent's reports")
    c.write("/etc/vpce-probe/collector.token", C_TOKEN + "\n", mode="0640")
    c.must("chgrp vpce-probe /etc/vpce-probe/collector.token")
    c.write("/etc/vpce-probe/config.toml", CONFIG.format(interval="10s") + AGENT_TO_COLLECTOR)
    c.must(f"systemctl start {UNIT}")

    def stored():
        code, body = c.http_get("http://127.0.0.1:8480/api/fleet")
        if code != 200:
            return None
        try:
            fleet = json.loads(body)
        except ValueError:
            return None
        return fleet if fleet.get("instances") else None

    fleet = wait_for("an instance in the collector's /api/fleet", stored, timeout=40) or {}
    instances = fleet.get("instances") or []
    check(len(instances) == 1 and instances[0].get("latest", {}).get("token_label") == "fleet",
          f"the agent's report is stored under the token's label ({len(instances)} instance(s))")
    c.sh(f"systemctl stop {UNIT}", timeout=60)
    db = c.sh("stat -c '%U %a' /var/lib/vpce-collector/reports.db").stdout.strip()
    check(db == "vpce-collector 600", f"the database is the collector's, 0600 ({db})")

    say("systemctl reload (SIGHUP) keeps the process; stop is clean")
    p = c.sh(f"systemctl reload {C_UNIT}", timeout=60)
    time.sleep(1)
    props = unit_show(c, "MainPID", "ActiveState", unit=C_UNIT)
    check(p.returncode == 0 and props == {"MainPID": pid, "ActiveState": "active"}, f"reloaded in place ({props})")
    t0 = time.monotonic()
    p = c.sh(f"systemctl stop {C_UNIT}", timeout=60)
    took = time.monotonic() - t0
    props = unit_show(c, "ActiveState", "Result", unit=C_UNIT)
    check(p.returncode == 0 and took < 25 and props == {"ActiveState": "inactive", "Result": "success"},
          f"stopped cleanly in {took:.1f} s ({props})")
    if failures:
        print("--- journal of the collector ---")
        print("\n".join(journal(c, C_UNIT).splitlines()[-30:]))


def find_deb(given: Path | None, package: str = "vpce-probe") -> Path:
    if given is not None:
        if not given.is_file():
            fail_now(f"{given}: no such file")
        return given
    # Where scripts/check_packages.py leaves them: the agent's in out/, the collector's in collector/out/.
    where = ROOT / "target" / "package-check" / ("collector/out" if package == "vpce-collector" else "out")
    debs = sorted(where.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        fail_now(f"no {package} .deb in {where.relative_to(ROOT)}/: run python3 scripts/check_packages.py first, or give the path")
    return debs[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", type=Path, help="the agent's .deb to install (default: check_packages.py's)")
    parser.add_argument("--collector-deb", type=Path, help="the collector's .deb (default: check_packages.py's)")
    parser.add_argument("--prepare-only", action="store_true", help="build or find the root file system, then stop")
    args = parser.parse_args()
    if os.geteuid() != 0:
        fail_now("run as root (systemd-nspawn and nsenter need it)")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            fail_now(f"{tool} not found: run scripts/install-deps.sh")
    deb = None if args.prepare_only else find_deb(args.deb)
    collector_deb = None if args.prepare_only else find_deb(args.collector_deb, "vpce-collector")
    rootfs = prepare_rootfs()
    if args.prepare_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="vpce-systemd-test-") as tmp:
        stage = Path(tmp)
        (stage / "in").mkdir()
        shutil.copy2(deb, stage / "in" / deb.name)
        shutil.copy2(collector_deb, stage / "in" / collector_deb.name)
        say(f"boot {rootfs.name} under systemd-nspawn with {deb.name} and {collector_deb.name}")
        container = Container(rootfs, stage)
        # A SIGTERM (CI's timeout) ends the container too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("systemd_test: terminated"))
        try:
            test_unit(container, deb.name)
            test_collector_unit(container, collector_deb.name)
        finally:
            container.stop()
    took = time.monotonic() - STARTED
    if failures:
        print(f"systemd_test: {len(failures)} check(s) failed in {took:.0f} s:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print(f"systemd_test: the unit behaves under systemd ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
