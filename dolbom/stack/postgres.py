"""A real PostgreSQL (Debian's ``postgresql``) on loopback with its own data directory."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

from dolbom.files import write_atomic
from dolbom.stack import proc
from dolbom.stack.errors import StackError


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    return proc.which(name)


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

    def start(self, timeout: float = 30.0) -> None:
        self.proc = proc.start(
            [_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.dir / "run"), "-c", "fsync=on", "-c", "max_connections=100"],
            self.log, self.user,
        )
        proc.wait_port(self.port, self.proc, timeout, "postgres", self.log)

    def stop(self) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown; SIGINT is "fast" (used here).
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
