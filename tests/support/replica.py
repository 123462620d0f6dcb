"""Two throwaway PostgreSQL clusters: a primary and its streaming replica (a hot standby).

The primary runs with ``wal_level=replica`` and a replication role; the standby is made by
``pg_basebackup -R`` and started read-only. Both listen on 127.0.0.1 only, on free ports, and
keep everything (data, socket, log) in their own directory. As root, the server programs run as
the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries installed, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                   if p.parent.name.isdigit() else 0)
    candidates = [p for p in found if (p / "initdb").exists()]
    if candidates:
        return candidates[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Cluster:
    bindir: Path
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, user: str = "ledger", password: str = "ledger", db: str = "ledger_test") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def run(self, *argv: str, timeout: float = 120) -> str:
        done = subprocess.run(_as_owner([str(self.bindir / argv[0]), *argv[1:]]), capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done.stdout

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-w", "-t", "60",
                 "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)

    def sql(self, statement: str, db: str = "postgres") -> str:
        """One statement as the superuser; its output, unaligned, without headers."""
        return self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-XAtq",
                        "-v", "ON_ERROR_STOP=1", "-c", statement).strip()


@dataclass
class Replica:
    primary: Cluster
    standby: Cluster

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        target = self.primary.sql("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = self.standby.sql(f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn()) > 0")
            if behind == "f":
                return
            time.sleep(0.1)
        raise AssertionError(f"the standby did not replay up to {target} within {timeout}s")


def _owned_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")
        path.chmod(0o700)
    return path


@contextmanager
def streaming_replica(bindir: Path) -> Iterator[Replica]:
    """A primary with a ``ledger`` role and database, and a hot standby replicating it, in a
    temporary directory of their own (removed afterwards)."""
    directory = Path(tempfile.mkdtemp(prefix="ledger-replica-"))
    directory.chmod(0o755)  # the postgres user reaches its directories
    primary = Cluster(bindir, _owned_dir(directory / "primary"), free_port())
    standby = Cluster(bindir, _owned_dir(directory / "standby"), free_port())
    started: list[Cluster] = []
    try:
        primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n")
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication replicator 127.0.0.1/32 trust\n")
        primary.start()
        started.append(primary)
        primary.sql("CREATE ROLE replicator REPLICATION LOGIN")
        primary.sql("CREATE ROLE ledger LOGIN PASSWORD 'ledger'")
        primary.sql("CREATE DATABASE ledger_test OWNER ledger")
        primary.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "replicator",
                    "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast")
        standby.start()
        started.append(standby)
        deadline = time.monotonic() + 60
        while standby.sql("SELECT pg_is_in_recovery()") != "t":
            assert time.monotonic() < deadline, "the standby is not in recovery"
            time.sleep(0.1)
        replica = Replica(primary, standby)
        replica.wait_caught_up()
        yield replica
    finally:
        for cluster in reversed(started):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
