#!/usr/bin/env python3
"""A throwaway PostgreSQL + pgvector server for tests and benchmarks (`vdb sync`).

    pg-test-server.py start DIR   initdb DIR/data, start on 127.0.0.1 (a free port) and a
                                  unix socket in DIR; print {"port", "socket_dir",
                                  "password", "bin"} as one JSON line
    pg-test-server.py stop DIR    stop it (fast shutdown)

The binaries come from PyPI's `pgserver` wheel (PostgreSQL with pgvector built in),
installed by tools/setup.sh into .venv-pg/. Run this with that venv's python. TCP logins
need the password (scram-sha-256), so tests can check a wrong one; the unix socket
trusts. As root, the server runs as the user `pgserver` (PostgreSQL refuses root),
created and given access the way pgserver itself does it.
"""
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from pgserver._commands import POSTGRES_BIN_PATH


def run_as():
    """The system user to run PostgreSQL as (None: this one), set up for it."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
    import stat

    ensure_user_exists("pgserver")
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", stat.S_IRGRP | stat.S_IROTH)
    return "pgserver"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(directory: Path):
    user = run_as()
    directory.mkdir(parents=True, exist_ok=True)
    if user:
        import shutil
        from pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(directory)
        shutil.chown(directory, user, user)
        directory.chmod(0o755)
    password = secrets.token_hex(12)
    password_file = directory / "password"
    password_file.write_text(password + "\n")
    if user:
        import shutil

        shutil.chown(password_file, user, user)
    data = directory / "data"
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--encoding=utf8",
         "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}"],
        check=True, stdout=subprocess.DEVNULL, user=user)
    port = free_port()
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(directory / "log"),
         "-o", f"-h 127.0.0.1 -p {port} -k {directory} -c fsync=off", "start"],
        check=True, stdout=subprocess.DEVNULL, user=user)
    print(json.dumps({"port": port, "socket_dir": str(directory), "password": password,
                      "bin": str(POSTGRES_BIN_PATH)}))


def stop(directory: Path):
    user = "pgserver" if os.geteuid() == 0 else None
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(directory / "data"), "-w", "-m", "fast", "stop"],
        check=True, stdout=subprocess.DEVNULL, user=user)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: pg-test-server.py start|stop DIR")
    (start if sys.argv[1] == "start" else stop)(Path(sys.argv[2]).absolute())
