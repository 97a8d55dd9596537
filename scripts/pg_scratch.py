#!/usr/bin/env python3
"""A scratch PostgreSQL server for the collector's benchmark scripts: initdb and postgres from
/usr/lib/postgresql/*/bin (scripts/install-deps.sh installs them), in a temporary directory, on
a loopback port, trust authentication, as the `postgres` user when run as root. Unlike the
tests' server it keeps PostgreSQL's durable defaults (fsync, synchronous_commit): the figures
are those of a real deployment's commit path.

    with pg_scratch.Server() as pg:
        url = pg.new_database("bench")
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise SystemExit("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                         "run scripts/install-deps.sh")
    return os.path.dirname(found[-1])


def _as_pg_user(argv):
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups",
                "--reset-env"] + argv
    return argv


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, settings=()):
        self.bin = pg_bin()
        self.settings = list(settings)
        self.dir = None
        self.proc = None
        self.port = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="vpce-bench-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        subprocess.run(_as_pg_user([f"{self.bin}/initdb", "-U", "postgres", "--auth=trust",
                                    "-E", "UTF8", "-D", data]),
                       check=True, stdout=subprocess.DEVNULL)
        self.port = _free_port()
        args = [f"{self.bin}/postgres", "-D", data, "-k", self.dir,
                "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
                "-c", "max_connections=200"]
        for s in self.settings:
            args += ["-c", s]
        self.proc = subprocess.Popen(_as_pg_user(args), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p",
                                    str(self.port), "-U", "postgres"],
                                   stdout=subprocess.DEVNULL).returncode == 0
            if ready:
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise SystemExit("the scratch PostgreSQL did not start")

    def psql(self, db, sql):
        out = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-X", "-q", "-A", "-t", "-d", db,
                              "-v", "ON_ERROR_STOP=1", "-c", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def new_database(self, name):
        self.psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, name):
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}?sslmode=disable"

    def __exit__(self, *exc):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False
