"""The git module against real repositories, a token-protected HTTP server and sshd.

These run git for real but no container engine; the same behaviour is exercised end to end through
`up` in test_up.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.log import Log
from devcontainer_builder.settings import gitref
from devcontainer_builder.system import environment
from devcontainer_builder.workspace import checkout, config, git
from support.builder import key_material
from support.githttp import GitHTTPServer
from support.repos import Remote
from support.repos import git as run_git
from support.services import SSHServer
from support.sinks import Collect


def make(repository: str, sandbox: Path, *, token: str = "", ssh_key: str = "", retries: int = 3, timeout: float = 60):
    log = Log()
    collect = Collect()
    log.add_sink(collect)
    runner = git.make_git(
        log,
        gitref.parse_repository(repository),
        env=environment.for_git(os.environ, str(sandbox)),
        token=token,
        username="x-access-token",
        ssh_key=ssh_key,
        known_hosts=str(sandbox / "known_hosts"),
        timeout=timeout,
        retries=retries,
        uid=1000,
        gid=1000,
    )
    return runner, collect


def prepare(
    remote_url: str, dest: Path, sandbox: Path, *, branch: str = "", branch_changed: bool = True, depth: int = 0, **kw
):
    runner, collect = make(remote_url, sandbox, **kw)
    try:
        result = checkout.prepare(
            runner,
            gitref.parse_repository(remote_url),
            str(dest),
            branch=branch,
            branch_changed=branch_changed,
            depth=depth,
            builders_own=config.is_generated,
        )
    finally:
        runner.close()
    return result, collect


@pytest.fixture
def seeded(remote: Remote) -> Remote:
    remote.commit({"README.md": "v1\n", "src/app.py": "print(1)\n"}, "first")
    return remote


def test_clone_checks_out_the_remotes_default_branch(make_remote, sandbox: Path) -> None:
    remote = make_remote(default_branch="trunk")
    head = remote.commit({"README.md": "hi\n"})
    dest = sandbox / "ws" / "project"
    checkout, _ = prepare(remote.url, dest, sandbox)
    assert (checkout.action, checkout.branch, checkout.commit) == ("cloned", "trunk", head)


@pytest.mark.needs_root  # only root can give files to another uid
def test_cloned_files_belong_to_the_workspace_uid(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    for path in (dest, dest / "README.md", dest / ".git" / "config", dest / "src"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (1000, 1000), path


def test_a_clone_into_an_existing_empty_folder_works_and_nothing_partial_is_left(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    dest.mkdir(parents=True)
    checkout, _ = prepare(seeded.url, dest, sandbox)
    assert checkout.action == "cloned"
    assert not list((sandbox / "ws").glob(".*partial*"))


def test_a_shallow_clone_stays_shallow_and_still_updates(seeded: Remote, sandbox: Path) -> None:
    for index in range(3):
        seeded.commit({"README.md": f"v{index}\n"})
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox, depth=1)
    assert run_git("rev-list", "--count", "HEAD", cwd=dest) == "1"
    new = seeded.commit({"README.md": "latest\n"})
    checkout, _ = prepare(seeded.url, dest, sandbox, branch_changed=False, depth=1)
    assert (checkout.action, checkout.commit) == ("fast-forwarded", new)


def test_an_unknown_branch_names_the_branches_that_exist(seeded: Remote, sandbox: Path) -> None:
    seeded.commit({"x": "1"}, branch="develop")
    with pytest.raises(BuildFailed) as caught:
        prepare(seeded.url, sandbox / "ws" / "p", sandbox, branch="nope")
    assert "branch 'nope' does not exist" in caught.value.message
    assert "develop" in caught.value.message and "main" in caught.value.message
    assert not (sandbox / "ws" / "p").exists()


def test_a_clean_tree_is_fast_forwarded(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    new = seeded.commit({"README.md": "v2\n"}, "second")
    checkout, _ = prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert (checkout.action, checkout.commit) == ("fast-forwarded", new)
    assert (dest / "README.md").read_text() == "v2\n"


def test_a_local_edit_to_a_file_upstream_changes_is_left_exactly_as_it_is(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    first, _ = prepare(seeded.url, dest, sandbox)
    (dest / "README.md").write_text("my edit\n")
    (dest / "notes.txt").write_text("untracked work\n")
    seeded.commit({"README.md": "upstream\n"}, "upstream change")
    checkout, _ = prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert checkout.action == "skipped-local-changes"
    assert "README.md" in checkout.message and "notes.txt" not in checkout.message
    assert checkout.at_stake == ["README.md"]
    assert (dest / "README.md").read_text() == "my edit\n"
    assert (dest / "notes.txt").read_text() == "untracked work\n"
    assert run_git("rev-parse", "HEAD", cwd=dest) == first.commit


def test_a_diverged_branch_is_not_touched(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    run_git("commit", "-q", "--allow-empty", "-m", "local work", cwd=dest, uid=1000)
    local = run_git("rev-parse", "HEAD", cwd=dest)
    seeded.commit({"README.md": "upstream\n"}, "upstream")
    checkout, _ = prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert checkout.action == "skipped-diverged"
    assert run_git("rev-parse", "HEAD", cwd=dest) == local


def test_local_commits_ahead_of_the_remote_are_kept(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    run_git("commit", "-q", "--allow-empty", "-m", "unpushed", cwd=dest, uid=1000)
    checkout, _ = prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert checkout.action == "ahead"


def test_a_requested_branch_is_switched_to_when_clean(seeded: Remote, sandbox: Path) -> None:
    feature = seeded.commit({"feature.txt": "f\n"}, "feature", branch="feature")
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    checkout, _ = prepare(seeded.url, dest, sandbox, branch="feature", branch_changed=True)
    assert (checkout.action, checkout.branch, checkout.commit) == ("switched", "feature", feature)


def test_a_branch_the_user_switched_to_is_kept_when_the_setting_did_not_change(seeded: Remote, sandbox: Path) -> None:
    seeded.commit({"feature.txt": "f\n"}, "feature", branch="feature")
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox, branch="main")
    run_git("switch", "-q", "feature", cwd=dest)
    checkout, _ = prepare(seeded.url, dest, sandbox, branch="main", branch_changed=False)
    assert checkout.branch == "feature"


def test_a_detached_head_with_its_own_commit_is_left_as_it_is_when_the_branch_setting_changes(
    seeded: Remote, sandbox: Path
) -> None:
    """A changed DEVCONTAINER_BRANCH switched away from it: the commit was left on no branch, its files gone."""
    seeded.commit({"feature.txt": "f\n"}, "feature", branch="feature")
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox, branch="main")
    run_git("switch", "-q", "--detach", cwd=dest, uid=1000)
    (dest / "experiment.txt").write_text("mine\n")
    run_git("add", "experiment.txt", cwd=dest, uid=1000)
    run_git("commit", "-qm", "an experiment on no branch", cwd=dest, uid=1000)
    mine = run_git("rev-parse", "HEAD", cwd=dest)
    checkout, _ = prepare(seeded.url, dest, sandbox, branch="feature", branch_changed=True)
    assert (checkout.action, checkout.commit) == ("detached", mine)
    assert "HEAD is detached" in checkout.message and "nor switching to feature" in checkout.message
    assert run_git("rev-parse", "HEAD", cwd=dest) == mine
    assert run_git("symbolic-ref", "-q", "HEAD", cwd=dest, check=False) == ""
    assert (dest / "experiment.txt").read_text() == "mine\n"


def test_a_generated_config_does_not_make_the_tree_dirty(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    (dest / ".devcontainer").mkdir()
    (dest / ".devcontainer" / "devcontainer.json").write_text(config.GENERATED_MARKER + ': x\n{"image": "y"}\n')
    new = seeded.commit({"README.md": "v2\n"})
    checkout, _ = prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert (checkout.action, checkout.commit) == ("fast-forwarded", new)


def test_an_unreachable_remote_on_update_carries_on_with_the_checkout(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    first, _ = prepare(seeded.url, dest, sandbox)
    run_git("remote", "set-url", "origin", "http://127.0.0.1:9/nothing.git", cwd=dest)
    checkout, collect = prepare("http://127.0.0.1:9/nothing.git", dest, sandbox, branch_changed=False, retries=2)
    assert checkout.action == "fetch-failed"
    assert checkout.commit == first.commit
    assert any("retrying" in line.text for line in collect.lines)


def test_a_clone_of_another_repository_is_left_alone(seeded: Remote, make_remote, sandbox: Path) -> None:
    other = make_remote("other")
    other.commit({"x": "1"})
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    checkout, _ = prepare(other.url, dest, sandbox)
    assert checkout.action == "foreign-clone"


def test_files_without_git_are_used_as_they_are(seeded: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    dest.mkdir(parents=True)
    (dest / "mine.txt").write_text("precious\n")
    checkout, _ = prepare(seeded.url, dest, sandbox)
    assert checkout.action == "not-a-repository"
    assert (dest / "mine.txt").read_text() == "precious\n"


def test_a_private_repository_is_cloned_with_the_token_and_nothing_is_left_behind(
    git_http: GitHTTPServer, sandbox: Path
) -> None:
    remote = Remote(sandbox, "private")
    remote.commit({"README.md": "secret project\n"})
    url = git_http.url("private")
    dest = sandbox / "ws" / "private"
    checkout, _ = prepare(url, dest, sandbox, token=git_http.token)
    assert checkout.action == "cloned"
    assert any(authorised for _, _, authorised in git_http.requests)
    assert git_http.token not in (dest / ".git" / "config").read_text()
    assert run_git("config", "--get", "remote.origin.url", cwd=dest) == url
    # the folder is named after its process (this one): other tests' builders have theirs meanwhile
    leftovers = set(Path(tempfile.gettempdir()).glob(f"devcontainer-builder-git-{os.getpid()}-*"))
    assert not leftovers, "the private temp dir with git's HOME must be removed"


def test_a_private_repository_without_a_token_explains_what_to_set(git_http: GitHTTPServer, sandbox: Path) -> None:
    Remote(sandbox, "private").commit({"README.md": "x\n"})
    with pytest.raises(BuildFailed) as caught:
        prepare(git_http.url("private"), sandbox / "ws" / "p", sandbox)
    assert "GH_TOKEN" in caught.value.message


def test_the_token_is_only_sent_to_the_repositorys_host(git_http: GitHTTPServer, sandbox: Path) -> None:
    runner, _ = make(git_http.url("private"), sandbox, token=git_http.token)
    try:
        text = (Path(runner.env["HOME"]) / ".gitconfig").read_text()
        assert git_http.token not in runner.env.values(), "runs in the workspace never hold the token"
        assert git_http.token in runner.network_env.values()
    finally:
        runner.close()
    assert f'[credential "{git_http.base_url}"]' in text
    assert git_http.token not in text


def test_server_errors_are_retried(git_http: GitHTTPServer, sandbox: Path) -> None:
    Remote(sandbox, "flaky").commit({"README.md": "x\n"})
    git_http.fail_next = 2
    checkout, collect = prepare(git_http.url("flaky"), sandbox / "ws" / "flaky", sandbox, token=git_http.token)
    assert checkout.action == "cloned"
    assert sum("retrying" in line.text for line in collect.lines) == 2


def test_retries_are_bounded(git_http: GitHTTPServer, sandbox: Path) -> None:
    Remote(sandbox, "down").commit({"README.md": "x\n"})
    git_http.fail_next = 100
    with pytest.raises(BuildFailed) as caught:
        prepare(git_http.url("down"), sandbox / "ws" / "down", sandbox, token=git_http.token, retries=3)
    assert "after 3 attempts" in caught.value.message
    assert len(git_http.requests) == 3


def test_a_git_command_that_hangs_is_stopped_by_the_timeout(sandbox: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers: a black hole
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hang.git"
    try:
        with pytest.raises(BuildFailed, match="did not finish within 2 s"):
            prepare(url, sandbox / "ws" / "hang", sandbox, timeout=2, retries=3)
    finally:
        listener.close()


def test_ssh_clone_with_a_base64_key(sshd: SSHServer, remote: Remote, sandbox: Path) -> None:
    remote.commit({"README.md": "over ssh\n"})
    key = sshd.client_key.read_text()
    url = sshd.url(remote.path)
    checkout, collect = prepare(url, sandbox / "ws" / "ssh", sandbox, ssh_key=key)
    assert checkout.action == "cloned"
    assert (sandbox / "ws" / "ssh" / "README.md").read_text() == "over ssh\n"
    assert not [line for line in collect.lines if key_material(key) in line.text]


def test_the_ssh_key_never_touches_the_disk(sshd: SSHServer, sandbox: Path) -> None:
    key = sshd.client_key.read_text()
    runner, _ = make(sshd.url(Path("/srv/x.git")), sandbox, ssh_key=key)
    try:
        assert runner.key_fd is not None
        memory_file = os.readlink(f"/proc/self/fd/{runner.key_fd}")
        assert memory_file.startswith("/memfd:"), memory_file
        assert stat.S_IMODE(os.fstat(runner.key_fd).st_mode) == 0o600
        assert f"/proc/$PPID/fd/{runner.key_fd}" in runner.network_env["GIT_SSH_COMMAND"]
        written = [p for p in Path(runner.home).parent.rglob("*") if p.is_file() and key_material(key) in p.read_text()]
        assert written == []
    finally:
        runner.close()
    assert runner.key_fd is None


# -- no local byte is ever lost --------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every byte of the working tree and the index, ignored files included."""
    found = {
        str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    found["<index>"] = run_git("diff", "--cached", "--binary", cwd=folder).encode()
    return found


LOCAL_STATES = {
    # name: (upstream change to the path the user holds, what the user does locally)
    "modified": ({"notes.txt": "upstream\n"}, lambda d: (d / "notes.txt").write_text("mine\n")),
    "staged": (
        {"notes.txt": "upstream\n"},
        lambda d: ((d / "notes.txt").write_text("mine, staged\n"), run_git("add", "notes.txt", cwd=d, uid=1000)),
    ),
    "untracked": ({"new.txt": "upstream adds it\n"}, lambda d: (d / "new.txt").write_text("mine, untracked\n")),
    "ignored": ({".env": "SECRET=upstream\n"}, lambda d: (d / ".env").write_text("SECRET=mine\n")),
    "deleted": ({"notes.txt": "upstream\n"}, lambda d: (d / "notes.txt").unlink()),
    "renamed": ({"notes.txt": "upstream\n"}, lambda d: run_git("mv", "notes.txt", "moved.txt", cwd=d)),
    "file-becomes-folder": (
        {"cache/index.txt": "upstream\n"},
        lambda d: (d / "cache").write_text("my cache file\n"),
    ),
    "folder-becomes-file": (
        {"build": "upstream file\n"},
        lambda d: ((d / "build").mkdir(), (d / "build" / "x.o").write_text("mine\n")),
    ),
}


@pytest.fixture
def with_gitignore(remote: Remote) -> Remote:
    remote.commit({"README.md": "v1\n", "notes.txt": "v1\n", ".gitignore": ".env\nbuild/\n"}, "first")
    return remote


@pytest.mark.parametrize("state", sorted(LOCAL_STATES))
def test_an_incoming_change_to_a_path_the_user_holds_touches_nothing(
    with_gitignore: Remote, sandbox: Path, state: str
) -> None:
    dest = sandbox / "ws" / "project"
    first, _ = prepare(with_gitignore.url, dest, sandbox)
    incoming, local_change = LOCAL_STATES[state]
    local_change(dest)
    before = snapshot(dest)
    with_gitignore.commit(incoming, f"upstream touches what the user has ({state})")
    result, _ = prepare(with_gitignore.url, dest, sandbox, branch_changed=False)
    assert result.action == "skipped-local-changes", result.message
    assert result.at_stake, "the message names the paths at stake"
    assert snapshot(dest) == before, "not one local byte changed"
    assert run_git("rev-parse", "HEAD", cwd=dest) == first.commit


@pytest.mark.parametrize("state", sorted(LOCAL_STATES))
def test_the_fast_forward_happens_when_the_users_changes_are_elsewhere(
    with_gitignore: Remote, sandbox: Path, state: str
) -> None:
    dest = sandbox / "ws" / "project"
    prepare(with_gitignore.url, dest, sandbox)
    _, local_change = LOCAL_STATES[state]
    local_change(dest)
    before = {name: data for name, data in snapshot(dest).items() if name != "README.md"}
    new = with_gitignore.commit({"README.md": "v2 from upstream\n"}, "upstream touches something else")
    result, _ = prepare(with_gitignore.url, dest, sandbox, branch_changed=False)
    assert (result.action, result.commit) == ("fast-forwarded", new), result.message
    assert (dest / "README.md").read_text() == "v2 from upstream\n"
    assert {name: data for name, data in snapshot(dest).items() if name != "README.md"} == before


def test_a_local_commit_on_the_path_is_kept(with_gitignore: Remote, sandbox: Path) -> None:
    dest = sandbox / "ws" / "project"
    prepare(with_gitignore.url, dest, sandbox)
    (dest / "notes.txt").write_text("committed locally\n")
    run_git("commit", "-qam", "mine", cwd=dest, uid=1000)
    local = run_git("rev-parse", "HEAD", cwd=dest)
    before = snapshot(dest)
    with_gitignore.commit({"notes.txt": "upstream\n"})
    result, _ = prepare(with_gitignore.url, dest, sandbox, branch_changed=False)
    assert result.action == "skipped-diverged"
    assert run_git("rev-parse", "HEAD", cwd=dest) == local and snapshot(dest) == before


def test_a_branch_switch_never_replaces_an_ignored_file(with_gitignore: Remote, sandbox: Path) -> None:
    with_gitignore.commit({".env": "SECRET=feature-branch\n"}, "tracks .env", branch="feature")
    dest = sandbox / "ws" / "project"
    prepare(with_gitignore.url, dest, sandbox, branch="main")
    (dest / ".env").write_text("SECRET=mine\n")
    result, _ = prepare(with_gitignore.url, dest, sandbox, branch="feature", branch_changed=True)
    assert result.action == "skipped-local-changes" and result.at_stake == [".env"]
    assert (dest / ".env").read_text() == "SECRET=mine\n"
    assert run_git("branch", "--show-current", cwd=dest) == "main"


def test_a_branch_switch_carries_unrelated_local_changes_along(with_gitignore: Remote, sandbox: Path) -> None:
    feature = with_gitignore.commit({"feature.txt": "f\n"}, "feature", branch="feature")
    dest = sandbox / "ws" / "project"
    prepare(with_gitignore.url, dest, sandbox, branch="main")
    (dest / "scratch.txt").write_text("untracked scratch\n")
    (dest / "README.md").write_text("edited\n")
    result, _ = prepare(with_gitignore.url, dest, sandbox, branch="feature", branch_changed=True)
    assert (result.action, result.branch, result.commit) == ("switched", "feature", feature)
    assert (dest / "scratch.txt").read_text() == "untracked scratch\n"
    assert (dest / "README.md").read_text() == "edited\n"


@pytest.mark.parametrize("operation", ["merge", "rebase"])
def test_an_operation_in_progress_is_left_alone(with_gitignore: Remote, sandbox: Path, operation: str) -> None:
    dest = sandbox / "ws" / "project"
    first, _ = prepare(with_gitignore.url, dest, sandbox)
    marker = dest / ".git" / ("MERGE_HEAD" if operation == "merge" else "rebase-merge")
    if operation == "merge":
        marker.write_text(first.commit + "\n")
    else:
        marker.mkdir()
    with_gitignore.commit({"README.md": "v2\n"})
    result, _ = prepare(with_gitignore.url, dest, sandbox, branch_changed=False)
    assert result.action == "in-progress" and operation in result.message
    assert run_git("rev-parse", "HEAD", cwd=dest) == first.commit


def test_the_repositorys_own_config_cannot_make_the_builder_run_code(
    with_gitignore: Remote, sandbox: Path, git_http: GitHTTPServer
) -> None:
    """What a devcontainer's hook can write into .git/config (the folder is bind-mounted) runs nothing in
    the builder and sees no credentials: fsmonitor, hooks, filters, a credential helper, a proxy."""
    private = Remote(sandbox, "private")
    # a driver whose name holds "=": `-c filter.x=y.smudge=` would not override it
    private.commit({"README.md": "v1\n", "data.txt": "v1\n", "other.cfg": "v1\n",
                    ".gitattributes": "*.txt filter=evil\n*.cfg filter=x=y\n"})  # fmt: skip
    dest = sandbox / "ws" / "private"
    prepare(git_http.url("private"), dest, sandbox, token=git_http.token)
    trap = sandbox / "trap"
    steal = f"sh -c 'env >> {trap}; cat'"
    for key, value in {
        "core.fsmonitor": f"sh -c 'env >> {trap}; exit 1'",
        "core.hooksPath": str(dest / ".git" / "evil-hooks"),
        "filter.evil.smudge": steal,
        "filter.evil.clean": steal,
        "filter.evil.required": "true",
        "filter.x=y.smudge": steal,
        "filter.x=y.clean": steal,
        "credential.helper": f"!sh -c 'env >> {trap}'",
        "http.proxy": "http://127.0.0.1:9",
        "core.sshCommand": f"sh -c 'env >> {trap}'",
    }.items():
        run_git("config", key, value, cwd=dest)
    hooks = dest / ".git" / "evil-hooks"
    hooks.mkdir()
    for hook in ("post-merge", "post-checkout", "reference-transaction", "pre-auto-gc"):
        (hooks / hook).write_text(f"#!/bin/sh\nenv >> {trap}\n")
        (hooks / hook).chmod(0o755)
    new = private.commit({"data.txt": "v2\n", "other.cfg": "v2\n"})
    result, _ = prepare(git_http.url("private"), dest, sandbox, token=git_http.token, branch_changed=False)
    assert (result.action, result.commit) == ("fast-forwarded", new), result.message
    assert (dest / "data.txt").read_text() == "v2\n", "checked out without running the filter"
    assert (dest / "other.cfg").read_text() == "v2\n"
    assert not trap.exists(), "nothing of the repository's config ran"


def test_a_worktree_or_gitfile_in_the_workspace_cannot_send_an_update_outside_it(seeded: Remote, sandbox: Path) -> None:
    """A hook in the devcontainer can point the workspace's git at a host folder: `core.worktree` in
    .git/config, or .git replaced by a gitfile. The builder's fast-forward never writes there."""
    dest = sandbox / "ws" / "project"
    prepare(seeded.url, dest, sandbox)
    victim = sandbox / "victim-home"
    victim.mkdir()
    (victim / ".bashrc").write_text("the user's own\n")
    run_git("config", "core.worktree", str(victim), cwd=dest)
    new = seeded.commit({".bashrc": "echo PWNED\n", "added.txt": "upstream\n"})
    result, _ = prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert (result.action, result.commit) == ("fast-forwarded", new), result.message
    assert (dest / "added.txt").read_text() == "upstream\n", "the update lands in the workspace"
    assert sorted(p.name for p in victim.iterdir()) == [".bashrc"]
    assert (victim / ".bashrc").read_text() == "the user's own\n"

    elsewhere = sandbox / "elsewhere.git"
    (dest / ".git").rename(elsewhere)
    (dest / ".git").write_text(f"gitdir: {elsewhere}\n")
    seeded.commit({"later.txt": "upstream\n"})
    prepare(seeded.url, dest, sandbox, branch_changed=False)
    assert not (dest / "later.txt").exists(), "no git run on a gitfile that points elsewhere"
    assert run_git("rev-parse", "HEAD", cwd=dest) == new


def test_the_private_folders_of_killed_builders_are_removed_by_the_next_one(sandbox: Path, seeded: Remote) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = Path(tempfile.gettempdir()) / f"devcontainer-builder-git-{dead.pid}-killed"
    abandoned.mkdir()
    alive = Path(tempfile.gettempdir()) / f"devcontainer-builder-git-{os.getpid()}-alive"
    alive.mkdir()
    try:
        prepare(seeded.url, sandbox / "ws" / "project", sandbox)
        assert not abandoned.exists(), "a dead builder's folder is removed"
        assert alive.exists(), "a live builder's is not"
    finally:
        alive.rmdir()
