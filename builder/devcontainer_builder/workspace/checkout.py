"""Clone the workspace's repository, or bring it up to date without ever losing a local byte.

An update moves the working tree only when nothing of the user's is at stake: the builder lists every
path the move would touch (the difference between HEAD and where it goes) and every path the user has
locally - modified, staged, deleted, renamed, untracked and ignored files alike - and moves only when
the two do not meet. `git merge --ff-only` and `git switch` alone are not that guarantee: they refuse
to overwrite tracked edits and untracked files, but silently replace ignored ones (a user's .env that
upstream starts tracking). Local commits are never moved (ahead or diverged: nothing happens), and a
detached HEAD or a merge, rebase, cherry-pick, revert or bisect in progress is left exactly as it is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.log import listing
from devcontainer_builder.settings.gitref import Repository
from devcontainer_builder.system import environment, proc
from devcontainer_builder.system.proc import last_line
from devcontainer_builder.workspace.git import AUTH_ERRORS, NETWORK_ERRORS, FetchDir, Git, matches

MOVED = ("cloned", "up-to-date", "fast-forwarded", "switched", "ahead")  # nothing the user should act on
IN_PROGRESS = {
    "MERGE_HEAD": "merge",
    "rebase-merge": "rebase",
    "rebase-apply": "rebase or am",
    "CHERRY_PICK_HEAD": "cherry-pick",
    "REVERT_HEAD": "revert",
    "BISECT_LOG": "bisect",
    "sequencer": "cherry-pick or revert sequence",
}


@dataclass
class Checkout:
    path: str
    action: str  # cloned, up-to-date, fast-forwarded, switched, ahead, or why nothing moved
    branch: str = ""
    commit: str = ""
    message: str = ""
    at_stake: list[str] = field(default_factory=list)  # local paths an update would have touched

    @property
    def moved_as_planned(self) -> bool:
        return self.action in MOVED


# -- clone ------------------------------------------------------------------------------------------


def _clone_error(repository: Repository, branch: str, result: proc.Result, git: Git) -> BuildFailed:
    stderr = result.stderr
    if result.timed_out:
        text = f"git clone of {repository} did not finish within {git.timeout:.0f} s (DEVCONTAINER_GIT_TIMEOUT)."
    elif branch and re.search(r"Remote branch .* not found|couldn't find remote ref", stderr):
        known = remote_branches(git, repository)
        listing = f" Branches on the remote: {', '.join(known[:20])}." if known else ""
        text = (
            f"branch '{branch}' does not exist in {repository}.{listing} Set DEVCONTAINER_BRANCH to an existing "
            "branch, or leave it empty for the remote's default branch."
        )
    elif matches(AUTH_ERRORS, stderr):
        hint = (
            "Set DEVCONTAINER_SSH_PRIVATE_KEY to a key the server accepts."
            if repository.kind in ("ssh", "scp")
            else "Set GH_TOKEN to a token with read access to it."
        )
        text = f"git could not authenticate to {repository}: it is private or the credentials were refused. {hint}"
    elif matches(NETWORK_ERRORS, stderr):
        text = f"could not reach {repository} after {git.retries} attempts: {last_line(stderr)}"
    else:
        text = f"git clone of {repository} failed: {last_line(stderr)}"
    return BuildFailed(text, step="clone", detail=stderr)


def remote_branches(git: Git, repository: Repository) -> list[str]:
    result = git.network(["ls-remote", "--heads", "--", repository.url], cwd=git.home, what="git ls-remote")
    if not result.ok:
        return []
    return [line.split("refs/heads/", 1)[1] for line in result.stdout.splitlines() if "refs/heads/" in line]


def _empty(path: str, leftovers: Collection[str]) -> bool:
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
    if git.owner is not None:
        os.chown(target, git.owner.uid, git.owner.gid)
    git.log.info(f"Cloning {repository}{f' (branch {branch})' if branch else ''} into {dest}")
    # run from git's private HOME: a repository around the working directory would lend git its config
    result = git.network([*args, "--", repository.url, target], cwd=git.home, what="git clone")
    if not result.ok:
        if in_place:
            _clear(target)
        else:
            shutil.rmtree(target, ignore_errors=True)
        raise _clone_error(repository, branch, result, git)
    if not in_place:
        os.rename(target, dest)
    current, commit = head(git, dest)
    return Checkout(dest, "cloned", current, commit, f"cloned {repository} at {commit[:12] or 'an empty repository'}")


# -- reading the workspace ---------------------------------------------------------------------------


def head(git: Git, path: str) -> tuple[str, str]:
    """(branch, commit) of HEAD; branch is "" when detached, commit "" in a repository without commits."""
    both = git.local(["rev-parse", "HEAD", "--symbolic-full-name", "HEAD"], cwd=path)
    lines = both.stdout.split()
    if both.ok and len(lines) == 2:
        return lines[1].removeprefix("refs/heads/") if lines[1].startswith("refs/heads/") else "", lines[0]
    branch = git.local(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=path)  # an unborn branch
    return (branch.stdout.strip() if branch.ok else ""), ""


def origin_refs(git: Git, path: str) -> dict[str, str]:
    """branch -> commit of every refs/remotes/origin/<branch>."""
    result = git.local(["for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin/"], cwd=path)
    refs = {}
    for line in result.stdout.splitlines() if result.ok else []:
        sha, _, name = line.partition(" ")
        refs[name.removeprefix("refs/remotes/origin/")] = sha
    return refs


def _rev(git: Git, path: str, ref: str) -> str:
    result = git.local(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=path)
    return result.stdout.strip() if result.ok else ""


def local_paths(git: Git, path: str) -> list[str]:
    """Every path the user has locally: tracked changes (staged or not, deletions and both sides of a
    rename), untracked files and ignored files. A folder reported as a whole ends with '/'."""
    result = git.local(
        ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=matching", "--no-renames",
         "--ignore-submodules=all"],
        cwd=path,
        touches_tree=True,
    )  # fmt: skip
    if not result.ok:
        raise BuildFailed(f"git status failed in {path}: {last_line(result.stderr)}", step="git")
    return [entry[3:] for entry in result.stdout.split("\0") if len(entry) > 3]


def changed_paths(git: Git, path: str, old: str, new: str) -> list[str]:
    """Paths that differ between two commits (both sides of a rename); every path of `new` when there
    is no old commit (an unborn branch)."""
    if old:
        args = ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--no-commit-id", old, new]
    else:
        args = ["ls-tree", "-r", "-z", "--name-only", new]
    result = git.local(args, cwd=path)
    if not result.ok:
        raise BuildFailed(f"git could not compare {old[:12]} and {new[:12]}: {last_line(result.stderr)}", step="git")
    return [name for name in result.stdout.split("\0") if name]


def _parents(name: str) -> Iterable[str]:
    parts = name.rstrip("/").split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def at_stake(incoming: Iterable[str], local: Iterable[str]) -> list[str]:
    """The local paths a move touching `incoming` would overwrite or remove: the same path, a path under
    an incoming one (a file that becomes a folder or the other way round), or a local folder around it."""
    local_files: set[str] = set()
    local_dirs: set[str] = set()
    inside: dict[str, list[str]] = {}  # folder -> local paths below it
    for name in local:
        if name.endswith("/"):
            local_dirs.add(name.rstrip("/"))
        else:
            local_files.add(name)
        for parent in _parents(name):
            inside.setdefault(parent, []).append(name)
    hit: list[str] = []
    for name in incoming:
        if name in local_files:
            hit.append(name)
        if name in local_dirs:
            hit.append(name + "/")
        hit += inside.get(name, [])
        hit += [f"{parent}/" if parent in local_dirs else parent for parent in _parents(name)
                if parent in local_files or parent in local_dirs]  # fmt: skip
    return sorted(dict.fromkeys(hit))


def in_progress(path: str) -> str:
    """The operation in progress in the repository (a merge, a rebase, ...), or ""."""
    git_dir = os.path.join(path, ".git")
    for name, what in IN_PROGRESS.items():
        if os.path.lexists(os.path.join(git_dir, name)):
            return what
    return ""


def same_remote(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        url = url.strip().rstrip("/")
        return url[:-4] if url.endswith(".git") else url

    return norm(a) == norm(b)


def _is_ancestor(git: Git, path: str, older: str, newer: str) -> bool:
    return git.local(["merge-base", "--is-ancestor", older, newer], cwd=path).returncode == 0


def default_branch(git: Git, repository: Repository) -> str:
    result = git.network(["ls-remote", "--symref", "--", repository.url, "HEAD"], cwd=git.home, what="git ls-remote")
    match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", result.stdout, re.MULTILINE)
    return match.group(1) if match else ""


# -- fetch ------------------------------------------------------------------------------------------


def fetch(git: Git, repository: Repository, path: str, target: str, *, depth: int, haves: list[str], known: str) -> str:
    """Bring origin/<target> (now at `known`, or "") up to date in the workspace; returns its commit. The
    network fetch runs in a FetchDir (the builder's own configuration, credentials available); the
    workspace then fetches from it locally, without credentials. Raises BuildFailed (step git-fetch)."""
    upstream_ref = f"refs/remotes/origin/{target}"
    fetch_dir = FetchDir.make(git, os.path.join(path, ".git"), [sha for sha in (*haves, known) if sha])
    try:
        args = [f"--git-dir={fetch_dir.git_dir}", "fetch", "--no-tags", "--no-recurse-submodules"]
        if depth and not known:
            # a branch new to this clone comes shallow; a known one is fetched without --depth, which
            # brings exactly the commits since the last fetch and keeps HEAD connected to them
            args += ["--depth", str(depth)]
        refspec = f"+refs/heads/{target}:{upstream_ref}"
        result = git.network([*args, "--", repository.url, refspec], cwd=fetch_dir.git_dir, what="git fetch")
        if not result.ok:
            if re.search(r"couldn't find remote ref", result.stderr):
                reason = f"branch '{target}' does not exist on the remote"
            else:
                reason = "timed out" if result.timed_out else last_line(result.stderr)
            raise BuildFailed(reason, step="git-fetch", detail=result.stderr)
        fetched = fetch_dir.ref(git, upstream_ref)
        if fetched and fetched != known:
            local = ["fetch", "--no-tags", "--no-recurse-submodules", "--update-shallow", "--no-write-fetch-head"]
            result = git.local([*local, "--", fetch_dir.git_dir, f"+{upstream_ref}:{upstream_ref}"], cwd=path)
            if not result.ok:
                raise BuildFailed(f"copying what was fetched failed: {last_line(result.stderr)}", step="git-fetch")
        return fetched
    finally:
        shutil.rmtree(fetch_dir.git_dir, ignore_errors=True)


# -- update -----------------------------------------------------------------------------------------


def _target(git: Git, repository: Repository, current: str, branch: str, branch_changed: bool) -> str:
    """The branch the workspace should be on: a changed DEVCONTAINER_BRANCH wins; a branch the user
    switched to by hand is kept while the setting stays the same."""
    if branch and branch != current and branch_changed:
        return branch
    if not branch and branch_changed:
        return default_branch(git, repository) or current
    return current


def update(
    git: Git,
    repository: Repository,
    path: str,
    *,
    branch: str,
    branch_changed: bool,
    depth: int,
    builders_own: Callable[[str], bool] = lambda _: False,
) -> Checkout:
    """Bring an existing clone up to date when no local byte is at stake; otherwise leave it exactly as
    it is and say why. `builders_own(absolute path)` tells files the builder wrote itself (a generated
    config, the error log), which an update may replace."""
    # three queries side by side: the repository's config (its origin, and filter drivers to neutralise
    # before any other git run there), HEAD, and what it knows of origin's branches
    config_query = proc.Pending(git.read_config, path, "remote.origin.url")
    remotes_query = proc.Pending(origin_refs, git, path)
    current, commit = head(git, path)
    origin = config_query.result().get("remote.origin.url", "")
    left = _left_alone(
        repository, path, origin, current=current, commit=commit, switch_to=branch if branch_changed else None
    )
    if left is not None:
        return left
    target = _target(git, repository, current, branch, branch_changed)
    local_query = proc.Pending(local_paths, git, path)  # reads the tree while the network is waited for
    known = remotes_query.result().get(target, "")
    try:
        upstream = fetch(git, repository, path, target, depth=depth, haves=[commit] if commit else [], known=known)
    except BuildFailed as err:
        local_query.done(LOCAL_TIMEOUT_GRACE)
        return Checkout(
            path,
            "fetch-failed",
            current,
            commit,
            f"could not fetch {target} from {repository} ({err.message}); carrying on with {current or 'HEAD'} at "
            f"{commit[:12]}",
        )
    here = Position(path, current, commit, target)
    try:
        local = local_query.result()
        plan = _plan(git, here, upstream)
        if isinstance(plan, Checkout):
            return plan
        new, action = plan
        incoming = changed_paths(git, path, commit, new)
    except BuildFailed as err:  # a broken index or missing objects: the user's to look at, not ours to fix
        return Checkout(path, "skipped-error", current, commit, f"{err.message}: not touching the working tree")
    return _move_unless_at_stake(git, here, new, action, incoming=incoming, local=local, builders_own=builders_own)


def _left_alone(
    repository: Repository, path: str, origin: str, *, current: str, commit: str, switch_to: str | None
) -> Checkout | None:
    """Why a clone is not to be touched at all - another remote's, mid-operation, detached - or None.
    switch_to: the branch newly asked for ("" for the default one), None when it did not change."""
    if not same_remote(origin, repository.url):
        return Checkout(
            path,
            "foreign-clone",
            current,
            commit,
            f"{path} holds a clone of {origin or 'an unknown remote'}, not of {repository}: leaving it untouched",
        )
    busy = in_progress(path)
    if busy:
        return Checkout(
            path, "in-progress", current, commit, f"a {busy} is in progress in {path}: not touching it. Finish or "
            "abort it inside the workspace and restart the workspace to update."
        )  # fmt: skip
    if not current:  # detached (an unborn branch has a name): its commits are on no branch, a switch loses them
        switch = f" nor switching to {switch_to or 'the default branch'}" if switch_to is not None else ""
        return Checkout(
            path, "detached", current, commit, f"HEAD is detached at {commit[:12]}: not updating{switch}. Check out "
            "a branch inside the workspace (git switch -c <name> keeps its commits) to have it updated."
        )  # fmt: skip
    return None


def _move_unless_at_stake(
    git: Git,
    here: Position,
    new: str,
    action: str,
    *,
    incoming: list[str],
    local: list[str],
    builders_own: Callable[[str], bool],
) -> Checkout:
    """The move to `new`, unless it would overwrite a local file of the user's; the builder's own files in
    its way are removed (upstream now provides them)."""
    path = here.path

    def own(name: str) -> bool:
        return builders_own(os.path.join(path, name.rstrip("/")))

    stake = [name for name in at_stake(incoming, local) if not own(name)]
    what = f"switch to {here.target}" if here.target != here.current else f"update {here.current} to {new[:12]}"
    if stake:
        return Checkout(
            path,
            "skipped-local-changes",
            here.current,
            here.commit,
            f"not touching the working tree: the {what} would overwrite local files ({listing(stake)}). Commit, "
            "move or stash them and restart the workspace to update.",
            at_stake=stake,
        )
    for name in at_stake(incoming, [name for name in local if own(name)]):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(path, name))  # the builder's own file: upstream now provides it
    return _move(git, here, new, action)


LOCAL_TIMEOUT_GRACE = 5.0


@dataclass(frozen=True)
class Position:
    """Where the workspace is and where it should go."""

    path: str
    current: str  # the branch checked out ("" when detached)
    commit: str  # HEAD ("" on an unborn branch)
    target: str  # the branch it should be on


def _plan(git: Git, here: Position, upstream: str) -> tuple[str, str] | Checkout:
    """Where HEAD should go - (commit, action) - or, when it should stay, the Checkout that says why."""
    path, current, commit, target = here.path, here.current, here.commit, here.target
    if target != current:
        local_tip = _rev(git, path, f"refs/heads/{target}")
        if local_tip and upstream and not _is_ancestor(git, path, local_tip, upstream):
            return local_tip, "switched"  # the local branch has commits of its own: switch, do not move it
        return upstream, "switched"
    if not upstream or upstream == commit:
        return Checkout(path, "up-to-date", current, commit, f"{current} is at {commit[:12]}")
    if not commit or _is_ancestor(git, path, commit, upstream):
        return upstream, "fast-forwarded"
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


def _move(git: Git, here: Position, new: str, action: str) -> Checkout:
    path, current, commit, target = here.path, here.current, here.commit, here.target
    if action == "switched":
        local_tip = _rev(git, path, f"refs/heads/{target}")
        if local_tip == new:
            args = ["switch", "--no-guess", target]
        else:  # a new local branch, or one behind upstream: (re)start it at upstream - a fast-forward
            args = ["switch", "--no-guess", "-C", target, "--track", f"origin/{target}"]
    else:
        args = ["merge", "--ff-only", "--no-stat", "--no-edit", new]
    result = git.local(args, cwd=path, touches_tree=True)
    if not result.ok:
        return Checkout(
            path,
            "move-failed",
            current,
            commit,
            f"git {args[0]} to {new[:12]} failed ({last_line(result.stderr)}): left as it was",
        )
    branch, moved_to = head(git, path)
    if action == "switched":
        return Checkout(path, "switched", branch, moved_to, f"switched to {branch} at {moved_to[:12]}")
    return Checkout(
        path, action, branch, moved_to, f"fast-forwarded {branch} from {commit[:12] or 'nothing'} to {moved_to[:12]}"
    )


def unclaimed(path: str, repository: Repository, leftovers: Collection[str] = ()) -> str:
    """Why an existing folder is not the workspace's own: it holds files but no clone of `repository`
    (files without git, a .git that is a link or a file, a clone of another remote); "" when it is
    missing, empty (but for `leftovers`) or such a clone. Reads .git/config as a file: nothing runs."""
    if not os.path.isdir(path) or _empty(path, leftovers):
        return ""
    dot_git = os.path.join(path, ".git")
    if os.path.islink(dot_git) or (os.path.lexists(dot_git) and not os.path.isdir(dot_git)):
        return "its .git is a link or a file, not a repository's folder"
    if not os.path.isdir(dot_git):
        return "it holds files but no git repository"
    result = proc.run(
        ["git", "config", "--file", os.path.join(dot_git, "config"), "--get", "remote.origin.url"],
        timeout=30.0,
        env=environment.minimal(os.environ),
    )
    origin = result.stdout.strip() if result.ok else ""
    if not same_remote(origin, repository.url):
        return f"it holds a clone of {origin or 'an unknown remote'}, not of {repository}"
    return ""


def prepare(
    git: Git,
    repository: Repository,
    path: str,
    *,
    branch: str,
    branch_changed: bool,
    depth: int,
    builders_own: Callable[[str], bool] = lambda _: False,
    leftovers: Collection[str] = (),
) -> Checkout:
    """Clone when there is nothing, update when there is a clone, and otherwise use what is there.
    `leftovers` are files of the builder's own that may be removed to clone into their folder."""
    dot_git = os.path.join(path, ".git")
    if os.path.isdir(dot_git) and not os.path.islink(dot_git):
        return update(
            git, repository, path, branch=branch, branch_changed=branch_changed, depth=depth, builders_own=builders_own
        )
    if os.path.lexists(dot_git):
        return Checkout(
            path, "not-a-plain-clone", message=f"{dot_git} is a link or a file, not the repository's folder: using "
            "the working tree as it is, without updating it"
        )  # fmt: skip
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
