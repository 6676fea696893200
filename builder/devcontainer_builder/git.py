"""Clone and update the workspace's repository without ever losing uncommitted work.

Credentials: a token reaches git only through a credential helper that reads it from the child's
environment, scoped to the repository's scheme://host. It is never in a URL, an argument, .git/config
or a file. SSH keys are copied to a private temporary directory that is removed after the run.

Updates: fetch, then fast-forward only when the tree is clean; a dirty or diverged tree is left exactly
as it is, with a warning that says why.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from devcontainer_builder import proc
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.gitref import Repository
from devcontainer_builder.log import Log
from devcontainer_builder.proc import last_line

LOCAL_TIMEOUT = 60.0
PASSWORD_VAR = "DEVCONTAINER_BUILDER_GIT_PASSWORD"  # noqa: S105 - a variable name, not a value
USERNAME_VAR = "DEVCONTAINER_BUILDER_GIT_USERNAME"
# $1 is get/store/erase; only `get` answers. The token comes from the environment, never from argv.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'echo "username=${{{USERNAME_VAR}}}"; echo "password=${{{PASSWORD_VAR}}}"; }}; f'
)
# Compiled on first use: they only matter when a command failed.
_NETWORK_ERRORS = (
    r"Could not resolve host|Temporary failure in name resolution|Connection refused|Connection timed out|"
    r"Connection reset|Failed to connect|Operation timed out|early EOF|remote end hung up unexpectedly|"
    r"RPC failed|returned error: 5\d\d|transfer closed|ssh: connect to host|Network is unreachable|"
    r"unable to access .*: (?:Recv|Send) failure|gnutls_handshake\(\) failed"
)
_AUTH_ERRORS = (
    r"Authentication failed|returned error: 40[13]|could not read Username|could not read Password|"
    r"Permission denied \(publickey|terminal prompts disabled|Invalid username or password"
)


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None  # re caches the compiled pattern


@dataclass
class Checkout:
    path: str
    action: str  # cloned, up-to-date, fast-forwarded, switched, ahead, skipped-dirty, ...
    branch: str = ""
    commit: str = ""
    message: str = ""


@dataclass
class Git:
    """How to run git for one workspace: environment, identity, bounds and where to log."""

    log: Log
    env: Mapping[str, str]
    timeout: float
    retries: int
    uid: int | None = None
    gid: int | None = None
    temp_dir: str = ""
    notes: list[str] = field(default_factory=list)

    def run(self, args: list[str], *, cwd: str | None = None, timeout: float | None = None) -> proc.Result:
        self.log.debug("git " + " ".join(args), source="git")
        return proc.run(
            ["git", *args],
            timeout=timeout or LOCAL_TIMEOUT,
            env=self.env,
            cwd=cwd,
            user=self.uid,
            group=self.gid,
        )

    def remote(self, args: list[str], *, cwd: str | None, what: str) -> proc.Result:
        """A network operation: bounded by the git timeout, retried with back-off on network errors."""
        attempt = 1
        while True:
            result = self.run(args, cwd=cwd, timeout=self.timeout)
            retry = not result.ok and not result.timed_out and _matches(_NETWORK_ERRORS, result.stderr)
            if not retry or attempt >= self.retries:
                return result
            delay = min(2 ** (attempt - 1), 10) * (0.5 + (time.monotonic_ns() % 1000) / 1000)  # jitter
            self.log.warn(
                f"{what} failed with a network error (attempt {attempt} of {self.retries}): "
                f"{last_line(result.stderr)}; retrying in {delay:.1f} s"
            )
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gitconfig_text(entries: list[tuple[str, str, str, str]]) -> str:
    """(section, subsection, key, value) entries in git's config file syntax, values quoted."""
    lines = []
    for section, subsection, key, value in entries:
        header = f"[{section} {_quote(subsection)}]" if subsection else f"[{section}]"
        lines += [header, f"\t{key} = {_quote(value)}"]
    return "\n".join(lines) + "\n"


def make_git(
    log: Log,
    repository: Repository,
    *,
    token: str,
    username: str,
    ssh_key: str,
    known_hosts: str,
    timeout: float,
    retries: int,
    uid: int | None,
    gid: int | None,
    base_env: Mapping[str, str],
    secret_names: list[str],
) -> Git:
    """Build git's environment: no secrets from ours, a scoped credential helper, a private HOME."""
    drop_privileges = os.geteuid() == 0 and uid not in (None, 0)
    temp_dir = tempfile.mkdtemp(prefix="devcontainer-builder-git-")
    home = os.path.join(temp_dir, "home")
    os.mkdir(home, 0o700)
    env = {k: v for k, v in base_env.items() if k not in secret_names and not k.startswith("GIT_")}
    env.update(
        HOME=home,
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL="file:git:http:https:ssh",
        GIT_CONFIG_NOSYSTEM="1",
    )
    # A global config file in the private HOME rather than GIT_CONFIG_COUNT: git drops GIT_CONFIG_*
    # when it spawns upload-pack for a local clone, and safe.directory must reach that side too.
    config = [
        ("safe", "", "directory", "*"),  # the workspace may belong to another uid than the builder's
        ("protocol", "ext", "allow", "never"),
        ("advice", "", "detachedHead", "false"),
        ("init", "", "defaultBranch", "main"),
    ]
    password = repository.password or token
    if password and repository.kind in ("https", "http"):
        config.append(("credential", repository.credential_scope, "helper", CREDENTIAL_HELPER))
        env[PASSWORD_VAR] = password
        env[USERNAME_VAR] = repository.username or username
    if repository.kind in ("ssh", "scp"):
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "StrictHostKeyChecking=accept-new"]
        if known_hosts:
            ssh += ["-o", f"UserKnownHostsFile={known_hosts}"]
        if ssh_key:
            key_path = os.path.join(temp_dir, "id_key")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(ssh_key if ssh_key.endswith("\n") else ssh_key + "\n")
            if drop_privileges:
                os.chown(key_path, uid, gid)
            ssh += ["-i", key_path, "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    with open(os.path.join(home, ".gitconfig"), "w", encoding="utf-8") as handle:
        handle.write(gitconfig_text(config))
    if drop_privileges:
        for path in (temp_dir, home, os.path.join(home, ".gitconfig")):
            os.chown(path, uid, gid)
        if known_hosts:
            if not os.path.exists(known_hosts):
                open(known_hosts, "a").close()
            os.chown(known_hosts, uid, gid)
    return Git(
        log=log,
        env=env,
        timeout=timeout,
        retries=retries,
        uid=uid if drop_privileges else None,
        gid=gid if drop_privileges else None,
        temp_dir=temp_dir,
    )


def _clone_error(repository: Repository, branch: str, result: proc.Result, git: Git, timeout: float) -> BuildFailed:
    stderr = result.stderr
    if result.timed_out:
        text = f"git clone of {repository} did not finish within {timeout:.0f} s (DEVCONTAINER_GIT_TIMEOUT)."
    elif branch and re.search(r"Remote branch .* not found|couldn't find remote ref", stderr):
        known = remote_branches(git, repository)
        listing = f" Branches on the remote: {', '.join(known[:20])}." if known else ""
        text = (
            f"branch '{branch}' does not exist in {repository}.{listing} Set DEVCONTAINER_BRANCH to an "
            "existing branch, or leave it empty for the remote's default branch."
        )
    elif _matches(_AUTH_ERRORS, stderr):
        hint = (
            "Set DEVCONTAINER_SSH_PRIVATE_KEY to a key the server accepts."
            if repository.kind in ("ssh", "scp")
            else "Set GH_TOKEN to a token with read access to it."
        )
        text = f"git could not authenticate to {repository}: it is private or the credentials were refused. {hint}"
    elif _matches(_NETWORK_ERRORS, stderr):
        text = f"could not reach {repository} after {git.retries} attempts: {last_line(stderr)}"
    else:
        text = f"git clone of {repository} failed: {last_line(stderr)}"
    return BuildFailed(text, step="clone", detail=stderr)


def remote_branches(git: Git, repository: Repository) -> list[str]:
    result = git.run(["ls-remote", "--heads", "--", repository.url], timeout=min(git.timeout, 60))
    if not result.ok:
        return []
    return [line.split("refs/heads/", 1)[1] for line in result.stdout.splitlines() if "refs/heads/" in line]


def _empty(path: str, leftovers: Collection[str] = ()) -> bool:
    """Nothing in the folder but files the builder itself left there (a failed clone's error log)."""
    try:
        return not [name for name in os.listdir(path) if name not in leftovers]
    except FileNotFoundError:
        return True


def _clear(path: str) -> None:
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            os.unlink(full)


def clone(git: Git, repository: Repository, dest: str, *, branch: str, depth: int) -> Checkout:
    """Clone into dest: via a sibling .partial folder renamed into place, so a killed clone leaves no
    half-checked-out workspace behind. An existing empty folder (a volume's mount point) is cloned into
    directly and emptied again on failure."""
    args = ["clone", "--no-recurse-submodules"]
    if depth:
        args += ["--depth", str(depth)]
    if branch:
        args += ["--branch", branch]
    parent = os.path.dirname(dest.rstrip("/"))
    os.makedirs(parent, exist_ok=True)
    in_place = os.path.isdir(dest)
    target = dest if in_place else os.path.join(parent, f".{os.path.basename(dest)}.partial")
    if not in_place:
        shutil.rmtree(target, ignore_errors=True)  # left by a clone that was killed
        os.mkdir(target)
    if git.uid is not None:
        os.chown(target, git.uid, git.gid)
    git.log.info(f"Cloning {repository}{f' (branch {branch})' if branch else ''} into {dest}")
    result = git.remote([*args, "--", repository.url, target], cwd=parent, what="git clone")
    if not result.ok:
        if in_place:
            _clear(target)
        else:
            shutil.rmtree(target, ignore_errors=True)
        raise _clone_error(repository, branch, result, git, git.timeout)
    if not in_place:
        os.rename(target, dest)
    current, commit = head(git, dest)
    return Checkout(dest, "cloned", current, commit, f"cloned {repository} at {commit[:12] or 'an empty repository'}")


def head(git: Git, path: str) -> tuple[str, str]:
    """(branch, commit) of HEAD; branch is "" when detached, commit "" in a repository without commits."""
    both = git.run(["rev-parse", "HEAD", "--symbolic-full-name", "HEAD"], cwd=path)
    lines = both.stdout.split()
    if both.ok and len(lines) == 2:
        return lines[1].removeprefix("refs/heads/") if lines[1].startswith("refs/heads/") else "", lines[0]
    branch = git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=path)  # an unborn branch
    return (branch.stdout.strip() if branch.ok else ""), ""


def dirty_paths(git: Git, path: str, ignore_untracked: Callable[[str], bool] = lambda _: False) -> list[str]:
    """Tracked changes and untracked files, except untracked files `ignore_untracked` accepts (files the
    builder wrote itself)."""
    result = git.run(["status", "--porcelain=v1", "-z", "--untracked-files=all"], cwd=path)
    if not result.ok:
        return [f"(git status failed: {last_line(result.stderr)})"]
    entries = [entry for entry in result.stdout.split("\0") if entry]
    dirty = []
    skip_next = False
    for entry in entries:
        if skip_next:  # the source path of a rename
            skip_next = False
            continue
        code, name = entry[:2], entry[3:]
        if code[0] in "RC":
            skip_next = True
        if code == "??" and ignore_untracked(os.path.join(path, name)):
            continue
        dirty.append(f"{code.strip()} {name}")
    return dirty


def _same_remote(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        url = url.strip().rstrip("/")
        return url[:-4] if url.endswith(".git") else url

    return norm(a) == norm(b)


def _is_ancestor(git: Git, path: str, older: str, newer: str) -> bool:
    return git.run(["merge-base", "--is-ancestor", older, newer], cwd=path).returncode == 0


def default_branch(git: Git, repository: Repository, path: str) -> str:
    result = git.remote(["ls-remote", "--symref", "--", repository.url, "HEAD"], cwd=path, what="git ls-remote")
    match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", result.stdout, re.MULTILINE)
    return match.group(1) if match else ""


def update(
    git: Git,
    repository: Repository,
    path: str,
    *,
    branch: str,
    branch_changed: bool,
    depth: int,
    ignore_untracked: Callable[[str], bool] = lambda _: False,
) -> Checkout:
    """Bring an existing clone up to date when that is safe; otherwise leave it exactly as it is."""
    origin_query = proc.Pending(git.run, ["config", "--get", "remote.origin.url"], cwd=path)
    current, commit = head(git, path)
    origin = origin_query.result().stdout.strip()
    if not _same_remote(origin, repository.url):
        return Checkout(
            path,
            "foreign-clone",
            current,
            commit,
            f"{path} holds a clone of {origin or 'an unknown remote'}, not of {repository}: leaving it untouched",
        )
    target = current
    if branch and branch != current and branch_changed:
        target = branch
    elif not branch and branch_changed:
        target = default_branch(git, repository, path) or current
    if not target:
        return Checkout(path, "detached", current, commit, f"HEAD is detached at {commit[:12]}: not updating")

    upstream_ref = f"refs/remotes/origin/{target}"
    refspec = f"+refs/heads/{target}:{upstream_ref}"
    # status reads the working tree and fetch writes only refs and objects: run them side by side, so a
    # large tree's status costs nothing while the network is waited for
    dirty_query = proc.Pending(dirty_paths, git, path, ignore_untracked)
    fetch = ["fetch", "--no-tags", "--no-recurse-submodules"]
    if depth and not git.run(["rev-parse", "--verify", "--quiet", upstream_ref], cwd=path).ok:
        # a branch new to this clone comes shallow; a known one is fetched without --depth, which
        # brings exactly the commits since the last fetch and keeps HEAD connected to them
        fetch += ["--depth", str(depth)]
    result = git.remote([*fetch, "origin", refspec], cwd=path, what="git fetch")
    dirty = dirty_query.result()
    if not result.ok:
        if re.search(r"couldn't find remote ref", result.stderr):
            reason = f"branch '{target}' does not exist on the remote"
        else:
            reason = "timed out" if result.timed_out else last_line(result.stderr)
        return Checkout(
            path,
            "fetch-failed",
            current,
            commit,
            f"could not fetch {target} from {repository} ({reason}); carrying on with "
            f"{current or 'HEAD'} at {commit[:12]}",
        )
    upstream = git.run(["rev-parse", "--verify", "--quiet", upstream_ref], cwd=path).stdout.strip()
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        action = f"switch to {target}" if target != current else "update"
        return Checkout(
            path,
            "skipped-dirty",
            current,
            commit,
            f"the working tree has uncommitted changes ({shown}): not touching it (would {action}). "
            "Commit or stash them and restart the workspace to update.",
        )
    action = "up-to-date"
    if target != current:
        exists = git.run(["rev-parse", "--verify", "--quiet", f"refs/heads/{target}"], cwd=path).ok
        switch = ["switch", target] if exists else ["switch", "-c", target, "--track", f"origin/{target}"]
        result = git.run(switch, cwd=path)
        if not result.ok:
            return Checkout(
                path,
                "switch-failed",
                current,
                commit,
                f"could not switch to {target}: {last_line(result.stderr)}; staying on {current}",
            )
        action = "switched"
        current = target
        commit = head(git, path)[1]
    if not upstream or upstream == commit:
        return Checkout(path, action, current, commit, f"{current} is at {commit[:12]}")
    if _is_ancestor(git, path, commit, upstream):
        result = git.run(["merge", "--ff-only", "--no-edit", upstream], cwd=path)
        if not result.ok:
            return Checkout(
                path,
                "skipped-merge",
                current,
                commit,
                f"fast-forward of {current} failed ({last_line(result.stderr)}): left as it was",
            )
        new_commit = head(git, path)[1]
        message = f"fast-forwarded {current} from {commit[:12]} to {new_commit[:12]}"
        return Checkout(path, "fast-forwarded" if action != "switched" else "switched", current, new_commit, message)
    if _is_ancestor(git, path, upstream, commit):
        return Checkout(
            path, "ahead", current, commit, f"{current} has local commits not on the remote: nothing to update"
        )
    return Checkout(
        path,
        "skipped-diverged",
        current,
        commit,
        f"{current} has diverged from origin/{target} (local commits the remote does not have, and the other way "
        "round): not touching it. Resolve it inside the workspace, e.g. with git pull --rebase.",
    )


def prepare(
    git: Git,
    repository: Repository,
    path: str,
    *,
    branch: str,
    branch_changed: bool,
    depth: int,
    ignore_untracked: Callable[[str], bool] = lambda _: False,
    leftovers: Collection[str] = (),
) -> Checkout:
    """Clone when there is nothing, update when there is a clone, and otherwise use what is there.
    `leftovers` are files of the builder's own that may be removed to clone into their folder."""
    if os.path.isdir(os.path.join(path, ".git")):
        return update(
            git,
            repository,
            path,
            branch=branch,
            branch_changed=branch_changed,
            depth=depth,
            ignore_untracked=ignore_untracked,
        )
    if not os.path.exists(path) or (os.path.isdir(path) and _empty(path, leftovers)):
        for name in leftovers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, name))
        return clone(git, repository, path, branch=branch, depth=depth)
    if not os.path.isdir(path):
        raise BuildFailed(
            f"{path} exists and is not a folder; remove it or set DEVCONTAINER_WORKSPACE_FOLDER to another path.",
            step="clone",
        )
    return Checkout(
        path,
        "not-a-repository",
        message=f"{path} already holds files but no git repository: using them as they are, without cloning",
    )
