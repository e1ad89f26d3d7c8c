"""A real PostgreSQL (Debian's ``postgresql``) on loopback with its own data directory,
and a streaming standby of it (``prepare_standby``, ``promote``): DESIGN.md §2's central
registry and alert journal, one primary and one hot standby (docs/scale.md)."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from dolbom.files import write_atomic
from dolbom.stack import proc
from dolbom.stack.errors import StackError


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    return proc.which(name)


REPLICATOR = "dolbom_replicator"  # the role a standby streams the primary's WAL as
SLOT_WAL_KEEP_MB = 2048  # WAL a lost standby's slot may hold on the primary, at most


def failover_url(servers: Sequence[Postgres], user: str, password: str, database: str) -> str:
    """One URL naming every server, for services that must follow a promotion.

    libpq tries the hosts in order and keeps the first that accepts writes
    (``target_session_attrs=read-write``): before a failover the primary, after it the
    promoted standby (a standby still in recovery is passed over). The engine's
    ``pool_pre_ping`` drops the dead primary's pooled connections on their next use.
    """
    hosts = "&".join(f"host=127.0.0.1:{s.port}" for s in servers)
    return (f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}@/"
            f"{database}?{hosts}&target_session_attrs=read-write&connect_timeout=3")


class Postgres:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.dir = directory
        self.port = port or proc.free_port()
        self.user = proc.service_user("postgres")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "postgres.log"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def prepare(self, superuser_password: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        pwfile = self.dir / "pwfile"
        # 0600 from its first byte, whatever the umask (a password)
        write_atomic(pwfile, (superuser_password + "\n").encode(), mode=0o600)
        proc.give_to(self.dir, self.user)
        if not (self.data / "PG_VERSION").exists():
            r = subprocess.run(
                [_bin("initdb"), "-D", str(self.data), "-U", "dolbom_admin", "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                user=self.user, capture_output=True, text=True, check=False,
            )
            if r.returncode:
                raise StackError(f"initdb failed: {r.stderr.strip().splitlines()[-1:]}")
        pwfile.unlink()

    def prepare_standby(self, primary: Postgres, replicator_password: str,
                        timeout: float = 120.0) -> None:
        """Make this server a streaming standby of ``primary`` (which must be running and
        have the replication role, ``add_replicator``): a base backup taken over the
        replication protocol, ``standby.signal`` and ``primary_conninfo`` written by
        ``pg_basebackup -R``, and a replication slot on the primary so that it keeps the
        WAL this standby has not yet received (bounded by ``SLOT_WAL_KEEP_MB``).
        Idempotent: an existing data directory is left as it is."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        proc.give_to(self.dir, self.user)
        if (self.data / "PG_VERSION").exists():
            return
        slot = self.standby_name
        r = subprocess.run(
            # application_name: the name the primary's synchronous_standby_names lists
            # (``require_synchronous``); -R writes it into primary_conninfo
            [_bin("pg_basebackup"), "-d", f"host=127.0.0.1 port={primary.port} "
             f"user={REPLICATOR} application_name={slot}",
             "-D", str(self.data), "-R", "-X", "stream", "-C", "-S", slot, "-c", "fast"],
            user=self.user, capture_output=True, text=True, check=False, timeout=timeout,
            # the password in the environment, not on a command line others can read;
            # -R writes it into primary_conninfo, in the 0700 data directory
            env={**os.environ, "PGPASSWORD": replicator_password, "PGCONNECT_TIMEOUT": "5"},
        )
        if r.returncode:
            last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StackError(f"pg_basebackup from port {primary.port} failed: {last}")

    @property
    def standby_name(self) -> str:
        """This server's name as a standby: its replication slot on the primary and the
        ``application_name`` it streams with."""
        return f"dolbom_standby_{self.port}"

    def require_synchronous(self, superuser_password: str, standbys: Sequence[Postgres],
                            ) -> None:
        """Make a commit on this primary wait until one of ``standbys`` has it on disk
        (``synchronous_standby_names = 'ANY 1 (...)'``, ``synchronous_commit`` on): an
        alarm journalled, and so acked to its device, survives the primary's death and
        the standby's promotion. The price: while none of them is connected, commits wait
        (alarms are not acked, so devices keep them; nobody is told) until one is back or
        the list is changed; run two standbys for a cell that must not wait
        (docs/scale.md). Takes effect at once (a reload)."""
        import psycopg

        names = ", ".join(f'"{s.standby_name}"' for s in standbys)
        with psycopg.connect(host="127.0.0.1", port=self.port, user="dolbom_admin",
                             password=superuser_password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ({names})'")
            conn.execute("SELECT pg_reload_conf()")

    def add_replicator(self, superuser_password: str, replicator_password: str) -> None:
        """Create (or re-password) the role a standby streams the WAL as: replication
        and login only, no access to any database's tables."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(host="127.0.0.1", port=self.port, user="dolbom_admin",
                             password=superuser_password, dbname="postgres",
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (REPLICATOR,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL("{} ROLE {} WITH REPLICATION LOGIN PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(REPLICATOR), sql.Literal(replicator_password)))

    def is_standby(self) -> bool:
        return (self.data / "standby.signal").exists()

    def promote(self, timeout: float = 30.0) -> None:
        """Make this standby the primary (``pg_ctl promote``): it stops following the old
        primary, finishes recovery and accepts writes; waits until it does."""
        r = subprocess.run(
            [_bin("pg_ctl"), "promote", "-D", str(self.data), "-w", "-t", str(int(timeout))],
            user=self.user, capture_output=True, text=True, check=False, timeout=timeout + 5,
        )
        if r.returncode:
            last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StackError(f"promoting the standby on port {self.port} failed: {last}")

    def start(self, timeout: float = 30.0) -> None:
        self.proc = proc.start(
            [_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.dir / "run"), "-c", "fsync=on", "-c", "max_connections=100",
             "-c", "wal_level=replica", "-c", f"max_slot_wal_keep_size={SLOT_WAL_KEEP_MB}MB",
             "-c", "hot_standby=on",
             # a client that vanished (its machine, its network) is noticed in ~11 s,
             # and its advisory locks (dolbom.alerts.leader) freed
             "-c", "tcp_keepalives_idle=5", "-c", "tcp_keepalives_interval=2",
             "-c", "tcp_keepalives_count=3"],
            self.log, self.user,
        )
        proc.wait_port(self.port, self.proc, timeout, "postgres", self.log)
        # listening is not yet accepting: "the database system is starting up"
        proc.wait_until(self._accepting, timeout, f"postgres on port {self.port} to accept "
                        f"connections (see {self.log})")

    def _accepting(self) -> bool:
        return subprocess.run([_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                               str(self.port)], check=False).returncode == 0

    def kill9(self) -> None:
        """SIGKILL, as a crash of the machine's database would be (fault tests)."""
        proc.kill9(self.proc)

    def stop(self) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown; SIGINT is "fast" (used here).
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
