"""Real git repositories for tests: a bare 'remote' plus helpers that commit to it as another user would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    # the tests act as the workspace's user on files the builder gave to uid 1000
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
}


def git(*args: str, cwd: Path | str | None = None, check: bool = True, uid: int | None = None) -> str:
    """git as the test's user, or as `uid` (for a workspace the builder gave to uid 1000: objects git
    writes there as root would be folders the builder's git cannot add to)."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        user=uid,
        group=uid,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class Remote:
    """A bare repository standing in for GitHub, with a scratch clone to push commits through."""

    def __init__(self, root: Path, name: str = "project", default_branch: str = "main") -> None:
        self.path = root / "remotes" / f"{name}.git"
        self.scratch = root / "scratch" / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", f"--initial-branch={default_branch}", str(self.path))
        self.default_branch = default_branch
        self.scratch.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", f"--initial-branch={default_branch}", str(self.scratch))
        git("remote", "add", "origin", str(self.path), cwd=self.scratch)

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def commit(self, files: dict[str, str | None], message: str = "change", branch: str | None = None) -> str:
        """Write (or delete, for None) files on a branch and push it; returns the new commit."""
        branch = branch or self.default_branch
        existing = git("ls-remote", "--heads", str(self.path), branch, cwd=self.scratch)
        if existing:
            git("fetch", "-q", "origin", branch, cwd=self.scratch)
            git("checkout", "-q", "-B", branch, f"origin/{branch}", cwd=self.scratch)
        else:
            current = git("rev-parse", "--verify", "--quiet", "HEAD", cwd=self.scratch, check=False)
            if current:
                git("checkout", "-q", "-B", branch, cwd=self.scratch)
            else:
                git("checkout", "-q", "--orphan", branch, cwd=self.scratch)
        for name, content in files.items():
            target = self.scratch / name
            if content is None:
                git("rm", "-q", "-r", name, cwd=self.scratch)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            if name.endswith(".sh"):
                target.chmod(0o755)
        git("add", "-A", cwd=self.scratch)
        written = [name for name, content in files.items() if content is not None]
        if written:  # also what the repository's .gitignore lists: upstream may start tracking it (git add -f)
            git("add", "-f", "--", *written, cwd=self.scratch)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.scratch)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.scratch)
        return git("rev-parse", "HEAD", cwd=self.scratch)
