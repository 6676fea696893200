"""The builder installed the way the quick start (docs/overview.md) installs it, by an ordinary user into folders
of their own: `pip install ./builder` into a virtualenv of Debian's Python, and the pinned devcontainer
CLI beside it. (The repository's own .venv may use a Python the user cannot read.)"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI_MODULES = ROOT / "builder" / "node_modules"


def as_user(user: str, home: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 600):
    account = pwd.getpwnam(user)
    clean = {"HOME": str(home), "USER": user, "LOGNAME": user, "PATH": os.environ["PATH"], "LANG": "C.UTF-8",
             **(env or {})}  # fmt: skip
    return subprocess.run(
        ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--", *argv],
        capture_output=True, text=True, env=clean, timeout=timeout, check=False, cwd=home,
    )  # fmt: skip


def copy_sources(user: str, home: Path) -> None:
    """What `git clone` and `npm install @devcontainers/cli` leave in the user's folders."""
    account = pwd.getpwnam(user)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        ROOT / "builder", home / "src" / "builder", ignore=shutil.ignore_patterns("node_modules", "*.egg-info")
    )
    shutil.copytree(CLI_MODULES, home / "cli" / "node_modules", symlinks=True)
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(home)], check=True, timeout=60)


def install(user: str, home: Path) -> str:
    """The builder and the CLI installed by `user` under home; returns the PATH entries to put first."""
    copy_sources(user, home)
    venv = home / "venv"
    made = as_user(user, home, "/usr/bin/python3", "-m", "venv", str(venv))  # Debian's, as a user has it
    assert made.returncode == 0, made.stderr
    pip = as_user(user, home, str(venv / "bin" / "pip"), "install", "-q", str(home / "src" / "builder"),
                  env={"PIP_CERT": os.environ.get("PIP_CERT", ""), "PIP_DEFAULT_TIMEOUT": "120"})  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return f"{venv / 'bin'}:{home / 'cli' / 'node_modules' / '.bin'}"
