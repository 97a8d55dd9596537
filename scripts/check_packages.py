#!/usr/bin/env python3
"""Builds the .deb and the .rpm from the debug build and inspects them (issue 6, "Packaging").

What it proves, each check able to fail:
- the SSM document (packaging/ssm/) is valid, its parameters are pattern-checked and reach the
  shell only as single-quoted data, and its script passes them on and keeps the probe's exit code;
- the unit (systemd/vpce-probe.service) has the directives the issue asks for;
- both packages install the binary, the unit, the sysusers/tmpfiles entries and the default
  config as a conffile / %config(noreplace), never enable or start the service, and carry the
  same files (byte for byte) as the sources;
- in a scratch root made from the .deb: systemd-sysusers and systemd-tmpfiles create the user and
  /var/lib/vpce-probe, `systemd-analyze verify` accepts the unit, and
  `systemd-analyze security --offline=true` scores it at 2.0 or below (and systemd/README.md shows
  that score);
- the packaged binary's `check-config` refuses the shipped default with one clear line, accepts
  it once a bucket is named, accepts every documented example at once, and every key the parser
  knows is documented in the default file;
- the packaged binary accepts every flag the SSM document's script passes it.

CI packages the debug binary to stay cheap: it is stripped into a scratch target directory under
the dist profile's name and packaged with the user-facing commands (`cargo deb --profile dist
--no-build`, `cargo generate-rpm --profile dist`) pointed at that directory.

Usage: python3 scripts/check_packages.py [--no-build]   (from anywhere; scripts/test.sh runs it
after the cargo build steps, so --no-build is only for a quick rerun). Tools: cargo-deb,
cargo-generate-rpm, dpkg-deb, dpkg-shlibdeps, rpm/rpm2archive, objcopy, openssl,
systemd-analyze, systemd-sysusers, systemd-tmpfiles (scripts/install-deps.sh installs them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "vpce-probe.service"
SYSUSERS = ROOT / "systemd" / "vpce-probe.sysusers"
TMPFILE = ROOT / "systemd" / "vpce-probe.tmpfile"
CONFIG = ROOT / "packaging" / "config.toml"
SSM_DOC = ROOT / "packaging" / "ssm" / "vpce-probe-run.json"
MAX_EXPOSURE = 2.0

# Installed path -> source file, the same in both packages.
INSTALLED = {
    "/usr/bin/vpce-probe": None,  # the binary, compared by digest with the staged build
    "/usr/lib/systemd/system/vpce-probe.service": UNIT,
    "/usr/lib/sysusers.d/vpce-probe.conf": SYSUSERS,
    "/usr/lib/tmpfiles.d/vpce-probe.conf": TMPFILE,
    "/etc/vpce-probe/config.toml": CONFIG,
    "/usr/share/doc/vpce-probe/README.md": ROOT / "README.md",
}

failures: list[str] = []


def check(cond: bool, what: str) -> bool:
    print(("  ok    " if cond else "  FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def must(cmd, **kw) -> subprocess.CompletedProcess:
    p = run(cmd, **kw)
    if p.returncode != 0:
        sys.exit(
            f"check_packages: {' '.join(map(str, cmd))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        )
    return p


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unquoted(script: str) -> str:
    """The script without its comments and double-quoted strings (messages may name commands)."""
    script = re.sub(r'"(?:[^"\\]|\\.)*"', '""', script, flags=re.S)
    return "\n".join(line.split("#", 1)[0] for line in script.splitlines())


def seconds(value: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h)?", value):
        total += float(num) * {"ms": 0.001, "s": 1, "": 1, "min": 60, "m": 60, "h": 3600}[unit]
    return total


# ---------------------------------------------------------------------------------------------
def check_ssm_document() -> None:
    print("SSM document", SSM_DOC.relative_to(ROOT))
    text = SSM_DOC.read_text()
    doc = json.loads(text)
    check(doc.get("schemaVersion") == "2.2", "schemaVersion is 2.2")
    params = doc.get("parameters", {})
    check(
        set(params) == {"Bucket", "Table", "Region", "OutputS3Prefix"},
        f"parameters are Bucket, Table, Region, OutputS3Prefix (got {sorted(params)})",
    )
    good = {
        "Bucket": ["", "my-bucket", "my.bucket.name", "abc", "b" * 63],
        "Table": ["", "orders", "Orders_2024.v1-x", "t" * 255],
        "Region": ["", "eu-west-1", "us-gov-west-1", "ap-southeast-2", "il-central-1"],
        "OutputS3Prefix": ["", "s3://reports", "s3://reports/", "s3://my.reports/vpce-probe/fleet_a/"],
    }
    hostile = [
        "x'; reboot; '",
        "$(id)",
        "`id`",
        "a b",
        "a\nb",
        "a;b",
        "a|b",
        "a&b",
        "a>b",
        "a\\b",
        '"',
        "'",
        "*",
        "$HOME",
    ]
    bad = {
        "Bucket": ["My_Bucket", "ab", "-bucket", "b" * 64] + hostile,
        "Table": ["ab", "t" * 256, "orders/x"] + hostile,
        "Region": ["EU-WEST-1", "eu-west", "eu_west_1", "eu-west-1;"] + hostile,
        "OutputS3Prefix": ["https://x/y", "s3://", "s3://Bad_Bucket/", "s3://b/p q"]
        + ["s3://bucket/" + h for h in hostile],
    }
    for name, spec in params.items():
        pattern = spec.get("allowedPattern")
        if not check(
            spec.get("type") == "String" and bool(pattern),
            f"{name}: type String with an allowedPattern",
        ):
            continue
        rx = re.compile(pattern)
        check(rx.fullmatch(spec.get("default", "")) is not None, f"{name}: its default matches its pattern")
        wrong = [v for v in good.get(name, []) if rx.fullmatch(v) is None]
        check(not wrong, f"{name}: pattern accepts valid values {wrong or ''}")
        let_in = [v for v in bad.get(name, []) if rx.fullmatch(v) is not None]
        check(not let_in, f"{name}: pattern refuses invalid and hostile values {let_in or ''}")
        check(
            "'" not in pattern and "\\s" not in pattern and " " not in pattern,
            f"{name}: pattern admits no quote or whitespace",
        )

    steps = doc.get("mainSteps", [])
    check(len(steps) == 1 and steps[0].get("action") == "aws:runShellScript", "one aws:runShellScript step")
    check(
        steps[0].get("precondition") == {"StringEquals": ["platformType", "Linux"]},
        "step runs on Linux only",
    )
    lines = steps[0].get("inputs", {}).get("runCommand", [])
    check(isinstance(lines, list) and all(isinstance(x, str) for x in lines), "runCommand is a list of lines")
    # Every placeholder anywhere in the document is one single-quoted assignment of the script.
    placeholders = re.findall(r"\{\{[^}]*\}\}", text)
    assigned = {}
    for line in lines:
        if "{{" in line:
            m = re.fullmatch(r"([a-z_]+)='\{\{ ([A-Za-z0-9]+) \}\}'", line)
            if check(m is not None, f"placeholder only as VAR='{{{{ Name }}}}': {line!r}"):
                assigned[m.group(2)] = m.group(1)
    check(len(placeholders) == len(assigned), "no placeholder outside the script's assignments")
    check(set(assigned) == set(params), f"every parameter is used once (used {sorted(assigned)})")

    # Run the script as SSM would (placeholders replaced by the values), with a stub vpce-probe
    # that records its argv and exits with the code it is told to; under dash and bash.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stub_dir = tmp / "bin"
        stub_dir.mkdir()
        stub = stub_dir / "vpce-probe"
        stub.write_text(
            '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$STUB_ARGS"\n'
            'echo "stub output"\nexit "${STUB_EXIT:-0}"\n'
        )
        stub.chmod(0o755)

        def ssm_run(shell: str, values: dict, exit_code: int):
            script = "\n".join(lines) + "\n"
            for name in params:
                script = script.replace("{{ %s }}" % name, values.get(name, ""))
            path = tmp / "_script.sh"
            path.write_text(script)
            args_file = tmp / "args"
            if args_file.exists():
                args_file.unlink()
            env = {
                "PATH": f"{stub_dir}:/usr/bin:/bin",
                "STUB_ARGS": str(args_file),
                "STUB_EXIT": str(exit_code),
            }
            p = run([shell, str(path)], env=env)
            argv = args_file.read_text().splitlines() if args_file.exists() else None
            return p, argv

        # sh is dash on Debian/Ubuntu and bash on Amazon Linux: the script must work in both.
        shells = {os.path.realpath(shutil.which(s)): s for s in ("sh", "dash", "bash") if shutil.which(s)}
        check("bash" in shells.values() and len(shells) >= 2, f"shells to run the script with: {sorted(shells)}")
        for shell in shells:
            p, argv = ssm_run(shell, {"Bucket": "my-bucket"}, 0)
            check(
                p.returncode == 0
                and argv == ["probe", "--no-progress", "--bucket", "my-bucket", "--format", "json"],
                f"{shell}: Bucket only -> JSON report on stdout ({argv}, exit {p.returncode})",
            )
            values = {
                "Bucket": "my.bucket",
                "Table": "orders",
                "Region": "eu-west-1",
                "OutputS3Prefix": "s3://reports/vpce-probe",
            }
            p, argv = ssm_run(shell, values, 1)
            want = [
                "probe", "--no-progress", "--bucket", "my.bucket", "--table", "orders",
                "--region", "eu-west-1", "--format", "text", "--ship", "s3://reports/vpce-probe/",
            ]
            check(
                p.returncode == 1 and argv == want,
                f"{shell}: all parameters -> text report, JSON shipped to the prefix, exit 1 kept ({argv})",
            )
            for code in (0, 2, 3):
                p, _ = ssm_run(shell, {"Table": "orders"}, code)
                check(p.returncode == code, f"{shell}: the probe's exit code {code} is the command's")
            p, argv = ssm_run(shell, {}, 0)
            check(
                p.returncode == 2 and argv is None and "Bucket" in p.stderr,
                f"{shell}: no Bucket and no Table -> exit 2 without probing ({p.stderr.strip()!r})",
            )


# ---------------------------------------------------------------------------------------------
def unit_directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def check_unit_source() -> None:
    print("unit", UNIT.relative_to(ROOT))
    d = unit_directives(UNIT.read_text())

    def last(key: str):
        v = d.get(f"Service.{key}")
        return v[-1] if v else None

    expect = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStartPre": "/usr/bin/vpce-probe check-config --config /etc/vpce-probe/config.toml",
        "ExecStart": "/usr/bin/vpce-probe agent --config /etc/vpce-probe/config.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "StateDirectory": "vpce-probe",
        "ConfigurationDirectory": "vpce-probe",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestartPreventExitStatus": "2",
    }
    for key, want in expect.items():
        check(last(key) == want, f"{key}={want} (got {last(key)!r})")
    check(seconds(last("WatchdogSec") or "0") >= 60, f"WatchdogSec >= 60 s (got {last('WatchdogSec')})")
    check(
        10 < seconds(last("TimeoutStopSec") or "0") <= 60,
        f"TimeoutStopSec above the agent's 10 s stop bound (got {last('TimeoutStopSec')})",
    )
    user = last("User")
    sysusers_names = re.findall(r"^u\s+(\S+)", SYSUSERS.read_text(), flags=re.M)
    check(
        last("DynamicUser") == "yes" or (user is not None and user != "root" and [user] == sysusers_names),
        f"runs as DynamicUser or the dedicated user the sysusers file creates (User={user}, sysusers {sysusers_names})",
    )
    tmpfile_dirs = re.findall(r"^d\s+(\S+)\s+(\S+)\s+(\S+)", TMPFILE.read_text(), flags=re.M)
    check(
        tmpfile_dirs == [(f"/var/lib/{last('StateDirectory')}", "0750", user)],
        f"the tmpfiles entry creates the StateDirectory for the user (got {tmpfile_dirs})",
    )
    families = set(" ".join(d.get("Service.RestrictAddressFamilies", [])).split())
    check(
        {"AF_INET", "AF_INET6", "AF_UNIX"} <= families and not families & {"AF_PACKET", "AF_NETLINK"},
        f"RestrictAddressFamilies allows IPv4/IPv6/UNIX only (got {sorted(families)})",
    )
    check(bool(d.get("Service.SystemCallFilter")), "SystemCallFilter is set")
    check(bool(last("MemoryMax")), "MemoryMax is set")
    for forbidden in ("IPAddressDeny", "IPAddressAllow", "PrivateNetwork"):
        check(f"Service.{forbidden}" not in d, f"no {forbidden}= (the probe must reach any AWS address)")
    check(last("ProcSubset") != "pid", "no ProcSubset=pid (the NACL check reads /proc/sys/net)")
    check("multi-user.target" in (d.get("Install.WantedBy") or [""])[-1], "WantedBy=multi-user.target")


# ---------------------------------------------------------------------------------------------
def build_packages(work: Path, no_build: bool) -> tuple[Path, Path, Path]:
    print("packages (debug build, packaged under the dist profile's name)")
    if not no_build:
        must(["cargo", "build", "--locked", "--bin", "vpce-probe"], cwd=ROOT, capture_output=False)
    meta = json.loads(must(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT).stdout)
    built = Path(meta["target_directory"]) / "debug" / "vpce-probe"
    if not built.is_file():
        sys.exit(f"check_packages: {built} is missing: run cargo build first")
    target = work / "target"
    staged = target / "dist" / "vpce-probe"
    staged.parent.mkdir(parents=True)
    # The debug binary is ~800 MB with its debug info; stripped it packages in seconds.
    must(["objcopy", "--strip-all", str(built), str(staged)])
    out = work / "out"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    # --fast: gzip instead of xz (the only difference from the user-facing command);
    # --no-strip: the staged binary is stripped already, so the package holds it byte for byte.
    must(
        ["cargo", "deb", "--no-build", "--profile", "dist", "--fast", "--no-strip", "-o", f"{out}/"],
        cwd=ROOT,
        env=env,
    )
    must(
        ["cargo", "generate-rpm", "--profile", "dist", "--target-dir", str(target), "-o", f"{out}/"],
        cwd=ROOT,
    )
    debs = list(out.glob("*.deb"))
    rpms = list(out.glob("*.rpm"))
    if len(debs) != 1 or len(rpms) != 1:
        sys.exit(f"check_packages: expected one .deb and one .rpm in {out}, found {debs + rpms}")
    print(f"  built {debs[0].name} ({debs[0].stat().st_size} bytes), {rpms[0].name} ({rpms[0].stat().st_size} bytes)")
    return debs[0], rpms[0], staged


def crate_version() -> str:
    meta = json.loads(must(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT).stdout)
    return next(p["version"] for p in meta["packages"] if p["name"] == "vpce-probe")


def check_no_auto_start(script: str, label: str) -> None:
    body = unquoted(script)
    check(
        not re.search(r"deb-systemd-invoke\s+(start|\$_dh_action)|_dh_action=start|systemctl\s+(--\S+\s+)*(start|enable|preset)\b", body),
        f"{label}: never enables or starts the service",
    )
    # cargo-deb's enable = false still re-enables a unit the admin had enabled (was-enabled).
    for m in re.finditer(r"deb-systemd-helper enable", body):
        before = body[: m.start()].rstrip().splitlines()[-3:]
        check(any("was-enabled" in x for x in before), f"{label}: 'enable' only when it was enabled before")


def check_deb(deb: Path, staged: Path, version: str, root: Path) -> None:
    print("deb", deb.name)
    fields = {
        k: must(["dpkg-deb", "-f", str(deb), k]).stdout.strip()
        for k in ("Package", "Version", "Depends", "Architecture")
    }
    check(fields["Package"] == "vpce-probe", f"Package: vpce-probe (got {fields['Package']})")
    check(fields["Version"] == f"{version}-1", f"Version: {version}-1 (got {fields['Version']})")
    check("libc6" in fields["Depends"] and "systemd" in fields["Depends"], f"Depends on libc6 and systemd ({fields['Depends']})")
    listing = {}
    for line in must(["dpkg-deb", "-c", str(deb)]).stdout.splitlines():
        parts = line.split(None, 5)
        listing[parts[5].removeprefix(".").rstrip("/")] = (parts[0], parts[1])
    regular = {p for p, (perms, _) in listing.items() if perms.startswith("-")}
    expected = set(INSTALLED) | {"/usr/share/doc/vpce-probe/copyright"}
    check(regular == expected, f"holds exactly the listed files (+ copyright) ({sorted(regular ^ expected) or ''})")
    for path in INSTALLED:
        entry = listing.get(path)
        check(entry is not None, f"installs {path}")
        if entry:
            want = "-rwxr-xr-x" if path == "/usr/bin/vpce-probe" else "-rw-r--r--"
            check(entry == (want, "root/root") or entry == (want, "0/0"), f"{path} is {want} root ({entry})")
    control = root.parent / "deb-control"
    must(["dpkg-deb", "-e", str(deb), str(control)])
    conffiles = (control / "conffiles").read_text().split() if (control / "conffiles").exists() else []
    check(conffiles == ["/etc/vpce-probe/config.toml"], f"conffiles: /etc/vpce-probe/config.toml only ({conffiles})")
    for name in ("postinst", "prerm", "postrm"):
        path = control / name
        if check(path.exists(), f"maintainer script {name} present"):
            check(run(["sh", "-n", str(path)]).returncode == 0, f"{name} is valid sh")
    postinst = (control / "postinst").read_text()
    check("systemd-sysusers" in postinst and "vpce-probe.conf" in postinst, "postinst creates the user (systemd-sysusers)")
    check("systemd-tmpfiles --create vpce-probe.conf" in postinst, "postinst creates /var/lib/vpce-probe (systemd-tmpfiles)")
    check("try-restart vpce-probe.service" in postinst, "postinst restarts the service on upgrade only if it runs")
    check_no_auto_start(postinst, "postinst")
    check("rm -rf /var/lib/vpce-probe" in (control / "postrm").read_text(), "postrm purge removes the state directory")
    must(["dpkg-deb", "-x", str(deb), str(root)])
    for path, source in INSTALLED.items():
        got = root / path.lstrip("/")
        if source is None:
            check(got.is_file() and sha256(got) == sha256(staged), f"{path} is the freshly built binary")
        else:
            check(got.is_file() and got.read_bytes() == source.read_bytes(), f"{path} is {source.relative_to(ROOT)}")
    out = run([str(root / "usr/bin/vpce-probe"), "--version"])
    check(out.stdout.strip() == f"vpce-probe {version}", f"packaged binary runs: {out.stdout.strip()!r}")


def check_rpm(rpm: Path, staged: Path, version: str, root: Path) -> None:
    print("rpm", rpm.name)
    q = lambda fmt: must(["rpm", "-qp", "--qf", fmt, str(rpm)]).stdout  # noqa: E731
    nvr = q("%{NAME} %{VERSION} %{RELEASE}")
    check(nvr == f"vpce-probe {version} 1", f"name/version/release vpce-probe {version} 1 (got {nvr})")
    files = {}
    for line in q("[%{FILEFLAGS:fflags}\t%{FILEMODES:perms}\t%{FILEUSERNAME}\t%{FILEGROUPNAME}\t%{FILENAMES}\n]").splitlines():
        flags, perms, user, group, name = line.split("\t")
        files[name] = (flags, perms, user, group)
    for path in INSTALLED:
        entry = files.get(path)
        if check(entry is not None, f"installs {path}"):
            want = "-rwxr-xr-x" if path == "/usr/bin/vpce-probe" else "-rw-r--r--"
            check(entry[1:] == (want, "root", "root"), f"{path} is {want} root ({entry})")
    cfg = files.get("/etc/vpce-probe/config.toml", ("",))[0]
    check("c" in cfg and "n" in cfg, f"/etc/vpce-probe/config.toml is %config(noreplace) (flags {cfg!r})")
    others = [n for n, e in files.items() if "c" in e[0] and n != "/etc/vpce-probe/config.toml"]
    check(not others, f"no other config files ({others})")
    requires = must(["rpm", "-qpR", str(rpm)]).stdout.split("\n")
    requires = {r.split()[0] for r in requires if r.strip()}
    check({"systemd", "shadow-utils"} <= requires, "Requires systemd and shadow-utils")
    scripts = {tag: q("%{" + tag + "}") for tag in ("PREIN", "POSTIN", "PREUN", "POSTUN")}
    with tempfile.TemporaryDirectory() as tmp:
        for tag, body in scripts.items():
            path = Path(tmp) / tag
            path.write_text(body)
            check(body != "(none)" and run(["sh", "-n", str(path)]).returncode == 0, f"{tag} scriptlet present and valid sh")
    check(
        re.search(r"useradd -r .*-d /var/lib/vpce-probe .*vpce-probe\s*$", scripts["PREIN"], flags=re.M) is not None,
        "%pre creates the vpce-probe system user",
    )
    check("systemd-tmpfiles --create /usr/lib/tmpfiles.d/vpce-probe.conf" in scripts["POSTIN"], "%post creates /var/lib/vpce-probe")
    for tag in ("PREIN", "POSTIN", "POSTUN"):
        check_no_auto_start(scripts[tag], f"%{tag.lower()}")
    check(re.search(r'"\$1" -eq 0 .*\n\s*systemctl --no-reload disable --now vpce-probe.service', scripts["PREUN"]) is not None, "%preun stops and disables on erase only")
    check("try-restart vpce-probe.service" in scripts["POSTUN"], "%postun restarts on upgrade only if it runs")
    # The payload, with rpm's own rpm2archive (a tar.gz on stdout). Not rpm2cpio: it exits 1 on
    # packages without the payload-size tag, which rpm-rs (cargo-generate-rpm) does not write,
    # although it extracts them completely.
    root.mkdir(parents=True)
    archive = root.parent / "rpm-payload.tgz"
    with open(rpm, "rb") as src, open(archive, "wb") as dst:
        r2a = subprocess.run(["rpm2archive", "-"], stdin=src, stdout=dst, stderr=subprocess.PIPE, text=True)
    check(r2a.returncode == 0, f"rpm2archive reads the payload {r2a.stderr.strip()}")
    members = {}
    for line in must(["tar", "-tzvf", str(archive)]).stdout.splitlines():
        parts = line.split(None, 5)
        members[parts[5].removeprefix(".")] = (parts[0], parts[1])
    check(set(members) == set(INSTALLED), f"payload holds exactly the listed files ({sorted(members)})")
    must(["tar", "-xzf", str(archive), "-C", str(root)])
    for path, source in INSTALLED.items():
        got = root / path.lstrip("/")
        if source is None:
            check(got.is_file() and sha256(got) == sha256(staged), f"{path} is the freshly built binary")
        else:
            check(got.is_file() and got.read_bytes() == source.read_bytes(), f"{path} is {source.relative_to(ROOT)}")


# ---------------------------------------------------------------------------------------------
def check_installed_root(root: Path) -> float:
    print("installed layout (scratch root from the .deb)")
    must(["systemd-sysusers", f"--root={root}", str(root / "usr/lib/sysusers.d/vpce-probe.conf")])
    passwd = (root / "etc/passwd").read_text()
    m = re.search(r"^vpce-probe:x:(\d+):(\d+):[^:]*:/var/lib/vpce-probe:(\S+)$", passwd, flags=re.M)
    check(m is not None and int(m.group(1)) < 1000 and "nologin" in m.group(3), f"sysusers: system user vpce-probe, no login ({passwd.strip()})")
    must(["systemd-tmpfiles", f"--root={root}", "--create", str(root / "usr/lib/tmpfiles.d/vpce-probe.conf")])
    state = root / "var/lib/vpce-probe"
    if check(state.is_dir(), "tmpfiles: /var/lib/vpce-probe created") and m:
        st = state.stat()
        check(
            (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, int(m.group(1)), int(m.group(2))),
            f"/var/lib/vpce-probe is 0750 vpce-probe:vpce-probe ({oct(st.st_mode & 0o777)} {st.st_uid}:{st.st_gid})",
        )

    # systemd-analyze verify resolves the unit's dependencies and commands inside --root: give
    # it the host's units, /bin/kill (ExecReload) and the packaged /usr/bin/vpce-probe.
    units = root / "usr/lib/systemd/system"
    for src in Path("/usr/lib/systemd/system").iterdir():
        dst = units / src.name
        if not dst.exists() and not dst.is_symlink():
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
            elif src.is_dir():
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst)
    if not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "usr/bin/kill")
    # A control: the same harness must complain about a broken copy of the unit.
    broken = UNIT.read_text().replace("Type=notify", "Type=notify\nProtectEverything=yes")
    (units / "vpce-probe-control.service").write_text(broken)
    control = run(["systemd-analyze", "verify", f"--root={root}", "vpce-probe-control.service"])
    check("ProtectEverything" in control.stdout + control.stderr, "control: verify reports an unknown directive in this harness")
    (units / "vpce-probe-control.service").unlink()
    v = run(["systemd-analyze", "verify", f"--root={root}", "vpce-probe.service"])
    complaints = [x for x in (v.stdout + v.stderr).splitlines() if "vpce-probe" in x]
    check(v.returncode == 0 and not complaints, f"systemd-analyze verify: no complaint ({complaints or v.returncode})")

    s = run(["systemd-analyze", "security", "--offline=true", str(units / "vpce-probe.service")])
    m = re.search(r"Overall exposure level for vpce-probe\.service: (\d+\.\d+)", s.stdout)
    score = float(m.group(1)) if m else 99.0
    check(m is not None and score <= MAX_EXPOSURE, f"systemd-analyze security --offline=true: exposure {score} <= {MAX_EXPOSURE}")
    readme = (ROOT / "systemd" / "README.md").read_text()
    check(
        m is not None and m.group(0) in readme,
        f"systemd/README.md shows the measured line {m.group(0) if m else '?'!r}",
    )
    return score


# ---------------------------------------------------------------------------------------------
def parser_keys() -> dict[str, set[str]]:
    """Keys the agent's config parser knows, per section, read from src/agent/config.rs."""
    src = (ROOT / "src/agent/config.rs").read_text()
    keys: dict[str, set[str]] = {}
    sections = {
        "FileConfig": "",
        "ProbeSection": "probe",
        "MetricsSection": "metrics",
        "SpoolSection": "spool",
        "ShippingSection": "shipping",
    }
    for struct, section in sections.items():
        m = re.search(r"struct " + struct + r" \{(.*?)\n\}", src, flags=re.S)
        if m:
            keys[section] = set(re.findall(r"^\s+(\w+):", m.group(1), flags=re.M))
    m = re.search(r"enum SinkSection \{(.*?)\n\}", src, flags=re.S)
    if m:
        keys["sink"] = set(re.findall(r"^\s+(\w+):", m.group(1), flags=re.M)) | {"type"}
    keys[""] -= {"probe", "metrics", "spool", "shipping", "sink"}
    return keys


def documented_keys(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"": set()}
    section = ""
    for line in text.splitlines():
        m = re.match(r"^#?\[\[?(\w+)\]?\]$", line)
        if m:
            section = m.group(1)
            out.setdefault(section, set())
            continue
        m = re.match(r"^#(\w+) = ", line)
        if m:
            out.setdefault(section, set()).add(m.group(1))
    return out


def check_config(binary: Path, work: Path) -> None:
    print("default config", CONFIG.relative_to(ROOT))
    text = CONFIG.read_text()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # no AWS_* or proxy variables

    def check_config_cmd(content: str, name: str):
        path = work / name
        path.write_text(content)
        return path, run([str(binary), "check-config", "--config", str(path)], env=env)

    path, p = check_config_cmd(text, "default.toml")
    err = p.stderr.strip()
    check(
        p.returncode == 2 and "\n" not in err and "nothing to probe" in err and str(path) in err and not p.stdout,
        f"the shipped default is refused with one clear line, exit 2 ({p.returncode}: {err!r})",
    )
    one = re.sub(r"^#(buckets = )", r"\1", text, count=1, flags=re.M)
    _, p = check_config_cmd(one, "bucket.toml")
    check(
        p.returncode == 0 and "1 target(s)" in p.stdout and "0 sink(s)" in p.stdout,
        f"with its buckets line uncommented it is accepted ({p.returncode}: {(p.stdout + p.stderr).strip()!r})",
    )

    # Every example at once: documented keys must be real keys with valid example values.
    token = work / "collector.token"
    token.write_text("example-token\n")
    ca = work / "collector-ca.pem"
    must(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", "/CN=vpce-probe package test CA", "-days", "2", "-keyout", str(work / "ca.key"), "-out", str(ca)]
    )
    reports = work / "reports"
    reports.mkdir()
    everything = re.sub(r"^#(?=\[|\w+ = )", "", text, flags=re.M)
    for key, value in {
        "bearer_token_file": token,
        "ca_file": ca,
        "ip_ranges": ROOT / "data/ip-ranges-s3-dynamodb.json",
        "path": reports,
    }.items():
        everything, n = re.subn(rf'^{key} = ".*"$', f'{key} = "{value}"', everything, flags=re.M)
        check(n == 1, f"example {key} found once")
    _, p = check_config_cmd(everything, "everything.toml")
    check(
        p.returncode == 0 and "2 target(s)" in p.stdout and "3 sink(s)" in p.stdout,
        f"every documented example at once is accepted ({p.returncode}: {(p.stdout + p.stderr).strip()!r})",
    )

    known = parser_keys()
    documented = documented_keys(text)
    check(len(known) == 6 and all(known.values()), f"read the parser's keys from src/agent/config.rs ({sorted(known)})")
    for section, keys in known.items():
        missing = keys - documented.get(section, set())
        check(not missing, f"[{section or 'top level'}] every key documented {sorted(missing) or ''}")
        extra = documented.get(section, set()) - keys
        check(not extra, f"[{section or 'top level'}] no documented key the parser does not know {sorted(extra) or ''}")


def check_ssm_with_binary(binary: Path, work: Path) -> None:
    """The document's script against the packaged binary: every flag it passes must exist. A
    region the binary does not know stops it at validation (exit 2) before any network use."""
    print("SSM document with the packaged binary")
    doc = json.loads(SSM_DOC.read_text())
    script = "\n".join(doc["mainSteps"][0]["inputs"]["runCommand"]) + "\n"
    values = {
        "Bucket": "my.bucket",
        "Table": "orders",
        "Region": "xx-nowhere-1",
        "OutputS3Prefix": "s3://reports/vpce-probe",
    }
    for name, value in values.items():
        check(re.fullmatch(doc["parameters"][name]["allowedPattern"], value) is not None, f"{name}={value} is allowed")
        script = script.replace("{{ %s }}" % name, value)
    path = work / "_ssm_script.sh"
    path.write_text(script)
    p = run(["sh", str(path)], env={"PATH": f"{binary.parent}:/usr/bin:/bin"})
    check(
        p.returncode == 2 and "--region 'xx-nowhere-1'" in p.stderr and "unexpected argument" not in p.stderr,
        f"the binary takes every flag the document passes ({p.returncode}: {p.stderr.strip()!r})",
    )


def main() -> int:
    no_build = "--no-build" in sys.argv[1:]
    tools = (
        "cargo-deb", "cargo-generate-rpm", "dpkg-deb", "dpkg-shlibdeps", "rpm", "rpm2archive",
        "tar", "objcopy", "openssl", "systemd-analyze", "systemd-sysusers", "systemd-tmpfiles",
    )
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"check_packages: {tool} is missing: run scripts/install-deps.sh")
    check_ssm_document()
    check_unit_source()
    work = ROOT / "target" / "package-check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    version = crate_version()
    deb, rpm, staged = build_packages(work, no_build)
    check_deb(deb, staged, version, work / "deb-root")
    check_rpm(rpm, staged, version, work / "rpm-root")
    score = check_installed_root(work / "deb-root")
    check_config(work / "deb-root/usr/bin/vpce-probe", work)
    check_ssm_with_binary(work / "deb-root/usr/bin/vpce-probe", work)
    if failures:
        print(f"\ncheck_packages: {len(failures)} check(s) failed:", *failures, sep="\n  ")
        return 1
    print(f"\ncheck_packages: all checks passed (exposure {score}); packages in {work / 'out'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
