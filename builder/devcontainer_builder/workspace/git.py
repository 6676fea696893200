"""Running git for a workspace, so that neither the repository nor the devcontainer can reach the
credentials or make the builder run their code.

The workspace's .git/config is writable from inside the devcontainer (the folder is bind-mounted), so
a repository's postCreateCommand can set `core.fsmonitor`, hooks, filter drivers, `http.proxy` or a
credential helper of its own - each a way to run code in the builder or to send the token elsewhere.
Hence two kinds of git run:

- `network()`: with credentials, only ever in a folder whose configuration the builder wrote itself -
  a new clone, or a throwaway fetch directory that borrows the workspace's objects (FetchDir). The
  token reaches git through a credential helper scoped to the repository's scheme://host and reading
  the value from git's environment; an SSH key reaches ssh as a memory file (memfd), never on disk.
- `local()`: in the workspace, with no secret in the environment and every configuration that runs a
  command overridden (fsmonitor, hooks, filter drivers, gc/maintenance, submodule recursion).

Both run as the workspace's user when the builder is root, with a private HOME holding the builder's
own global configuration and no system configuration.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devcontainer_builder.log import Log
from devcontainer_builder.settings.gitref import Repository
from devcontainer_builder.system import files, proc, retry
from devcontainer_builder.system.proc import last_line

LOCAL_TIMEOUT = 60.0
PASSWORD_VAR = "DEVCONTAINER_BUILDER_GIT_PASSWORD"  # noqa: S105 - a variable name, not a value
USERNAME_VAR = "DEVCONTAINER_BUILDER_GIT_USERNAME"
# $1 is get/store/erase; only `get` answers. The token comes from the environment, never from argv.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'echo "username=${{{USERNAME_VAR}}}"; echo "password=${{{PASSWORD_VAR}}}"; }}; f'
)
# Compiled on first use: they only matter when a command failed.
NETWORK_ERRORS = (
    r"Could not resolve host|Temporary failure in name resolution|Connection refused|Connection timed out|"
    r"Connection reset|Failed to connect|Operation timed out|early EOF|remote end hung up unexpectedly|"
    r"RPC failed|returned error: 5\d\d|transfer closed|ssh: connect to host|Network is unreachable|"
    r"unable to access .*: (?:Recv|Send) failure|gnutls_handshake\(\) failed"
)
AUTH_ERRORS = (
    r"Authentication failed|returned error: 40[13]|could not read Username|could not read Password|"
    r"Permission denied \(publickey|terminal prompts disabled|Invalid username or password"
)
# Configuration that makes git run a command, overridden for every git run in the workspace.
NEUTRAL = (
    "core.fsmonitor=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.recurseSubmodules=false",
    "submodule.recurse=false",
    "status.submoduleSummary=false",
    "credential.helper=",
    "core.sshCommand=",
    "diff.external=",
    "core.pager=cat",
    "core.alternateRefsCommand=true",
)


FILTER_SEPARATOR = "\0"  # between a filter key (which may hold "=") and its value: no key holds NUL


def _split_filter(item: str) -> tuple[str, str, str]:
    return item.partition(FILTER_SEPARATOR)


def _foreign_git_dir(folder: str) -> str:
    """Why git must not run in `folder`, or "": its .git must be a real directory (not a symlink, not a
    gitfile pointing elsewhere), or the builder's git would read and write a repository outside it."""
    dot_git = os.path.join(folder, ".git")
    if os.path.islink(dot_git) or (os.path.lexists(dot_git) and not os.path.isdir(dot_git)):
        return f"{dot_git} is not a directory (a symlink or a gitfile): the builder runs no git on it"
    return ""


def matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None  # re caches the compiled pattern


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gitconfig_text(entries: Sequence[tuple[str, str, str, str]]) -> str:
    """(section, subsection, key, value) entries in git's config file syntax, values quoted."""
    lines = []
    for section, subsection, key, value in entries:
        header = f"[{section} {_quote(subsection)}]" if subsection else f"[{section}]"
        lines += [header, f"\t{key} = {_quote(value)}"]
    return "\n".join(lines) + "\n"


@dataclass
class Git:
    """How to run git for one workspace: environments, identity, bounds and where to log."""

    log: Log
    env: dict[str, str]  # no secret: for runs in the workspace
    network_env: dict[str, str]  # env plus the credential variables and ssh command
    timeout: float
    retries: int
    uid: int | None = None
    gid: int | None = None
    home: str = ""
    hooks: str = ""  # an empty folder: core.hooksPath for every run in the workspace
    key_fd: int | None = None
    _temp: str = ""
    _filters: dict[str, list[str]] = field(default_factory=dict)

    def _run(
        self, args: Sequence[str], *, cwd: str | None, timeout: float, env: Mapping[str, str], fds: Sequence[int] = ()
    ) -> proc.Result:
        self.log.debug("git " + " ".join(args), source="git")
        return proc.run(["git", *args], timeout=timeout, env=env, cwd=cwd, user=self.uid, group=self.gid, pass_fds=fds)

    def local(
        self, args: Sequence[str], *, cwd: str, timeout: float = LOCAL_TIMEOUT, touches_tree: bool = False
    ) -> proc.Result:
        """git in the workspace `cwd`: no credentials, nothing of its configuration runs a command. A command
        that reads or writes the working tree (status, merge, switch) could run filter drivers: those get
        every configured driver emptied too.

        The workspace's .git is writable by the repository's own hooks, so: the overrides travel as
        GIT_CONFIG_KEY_n/VALUE_n, where a key is never split at "=" (`-c filter.x=y.smudge=` would set
        `filter.x` to `y.smudge=`, leaving a driver named "x=y" in force); --git-dir and --work-tree are
        given, so a `core.worktree` (or a .git that is a symlink or a gitfile) cannot send git's writes to
        a path outside the workspace."""
        refusal = _foreign_git_dir(cwd)
        if refusal:
            self.log.debug(f"git {' '.join(args)}: {refusal}", source="git")
            return proc.Result(["git", *args], 128, "", refusal, False, 0.0)
        filters = self._neutral_filters(cwd) if touches_tree else []
        overrides = [*NEUTRAL, f"core.hooksPath={self.hooks}", "core.worktree=", *filters]
        env = dict(self.env, GIT_CONFIG_COUNT=str(len(overrides)))
        for index, item in enumerate(overrides):
            key, _, value = item.partition("=") if not item.startswith("filter.") else _split_filter(item)
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        where = [f"--git-dir={os.path.join(cwd, '.git')}", f"--work-tree={cwd}"]
        return self._run([*where, *args], cwd=cwd, timeout=timeout, env=env)

    def _neutral_filters(self, cwd: str) -> list[str]:
        """Filter drivers configured in the repository (smudge/clean/process commands), each emptied: an
        empty command is no filter at all. Read once per repository (read_config)."""
        if cwd not in self._filters:
            self.read_config(cwd)
        return self._filters[cwd]

    def read_config(self, cwd: str, *extra: str) -> dict[str, str]:
        """The repository's configuration values of the keys in `extra` (e.g. remote.origin.url), read in
        the same git run that finds its filter drivers - reading configuration runs nothing."""
        keys = "|".join(key.replace(".", "\\.") for key in extra)
        pattern = r"^(filter\..*\.(smudge|clean|process|required)" + (f"|{keys}" if keys else "") + ")$"
        listed = self._run(["config", "-z", "--get-regexp", pattern], cwd=cwd, timeout=LOCAL_TIMEOUT, env=self.env)
        values: dict[str, str] = {}
        names: set[str] = set()
        for entry in listed.stdout.split("\0") if listed.ok else []:
            key, _, value = entry.partition("\n")
            if key.startswith("filter."):
                names.add(key.rsplit(".", 1)[0])
            elif key:
                values.setdefault(key, value)
        self._filters[cwd] = [
            f"{name}.{key}{FILTER_SEPARATOR}{'false' if key == 'required' else ''}"
            for name in sorted(names)
            for key in ("smudge", "clean", "process", "required")
        ]
        return values

    def network(self, args: Sequence[str], *, cwd: str | None, what: str) -> proc.Result:
        """A network operation, with credentials, in a folder whose config the builder wrote. Bounded by
        the git timeout; retried with back-off on network errors."""
        fds = (self.key_fd,) if self.key_fd is not None else ()
        waits = retry.delays(1.0, 10.0)
        attempt = 1
        while True:
            result = self._run(args, cwd=cwd, timeout=self.timeout, env=self.network_env, fds=fds)
            again = not result.ok and not result.timed_out and matches(NETWORK_ERRORS, result.stderr)
            if not again or attempt >= self.retries:
                return result
            delay = next(waits)
            self.log.warn(
                f"{what} failed with a network error (attempt {attempt} of {self.retries}): "
                f"{last_line(result.stderr)}; retrying in {delay:.1f} s"
            )
            retry.sleep(delay)
            attempt += 1

    def bare(self, args: Sequence[str], *, git_dir: str) -> proc.Result:
        """git in a repository the builder made and configured itself (a FetchDir): no credentials."""
        return self._run([f"--git-dir={git_dir}", *args], cwd=git_dir, timeout=LOCAL_TIMEOUT, env=self.env)

    @property
    def owner(self) -> files.Owner | None:
        """Who git runs as, when that is not the builder itself."""
        return files.Owner(self.uid, self.gid) if self.uid is not None and self.gid is not None else None

    def private_dir(self, prefix: str) -> str:
        """A folder for the builder's own git work, private to it and owned by git's user."""
        path = tempfile.mkdtemp(prefix=prefix, dir=self._temp)
        files.chown(path, self.owner)
        return path

    def close(self) -> None:
        if self.key_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.key_fd)
            self.key_fd = None
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)


def make_git(
    log: Log,
    repository: Repository,
    *,
    env: Mapping[str, str],
    token: str,
    username: str,
    ssh_key: str,
    known_hosts: str,
    timeout: float,
    retries: int,
    uid: int | None,
    gid: int | None,
) -> Git:
    """Git's environments from `env` (an allow-listed environment: environment.for_git): a private HOME
    with the builder's global config, no system config, and the credentials for network runs only."""
    drop = os.geteuid() == 0 and uid not in (None, 0)
    owner = files.Owner(uid, gid) if drop and uid is not None and gid is not None else None
    remove_abandoned()
    temp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")
    try:
        files.chown(temp, owner)
        home, hooks, templates = _private_folders(temp, owner)
        base = _base_env(env, home)
        config = _global_config(env, hooks=hooks, templates=templates)
        network = dict(base)
        password = repository.password or token
        if password and repository.kind in ("https", "http"):
            config.append(("credential", repository.credential_scope, "helper", CREDENTIAL_HELPER))
            network[PASSWORD_VAR] = password
            network[USERNAME_VAR] = repository.username or username
        key_fd = None
        if repository.kind in ("ssh", "scp"):
            network["GIT_SSH_COMMAND"], key_fd = _ssh_command(ssh_key, known_hosts, owner)
        gitconfig = os.path.join(home, ".gitconfig")
        files.write_atomic(gitconfig, gitconfig_text(config), mode=0o600, owner=owner, sync=False)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return Git(
        log=log,
        env=base,
        network_env=network,
        timeout=timeout,
        retries=retries,
        uid=uid if drop else None,
        gid=gid if drop else None,
        home=home,
        hooks=hooks,
        key_fd=key_fd,
        _temp=temp,
    )


def _private_folders(temp: str, owner: files.Owner | None) -> tuple[str, str, str]:
    """HOME, an empty hooks folder and an empty template folder, inside temp: nothing of the machine's."""
    home = os.path.join(temp, "home")
    hooks = os.path.join(temp, "no-hooks")
    templates = os.path.join(temp, "no-templates")
    for folder in (home, hooks, templates):
        os.mkdir(folder, 0o700)
        files.chown(folder, owner)
    return home, hooks, templates


def _base_env(env: Mapping[str, str], home: str) -> dict[str, str]:
    base = dict(env)
    base.update(
        HOME=home,
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL="file:git:http:https:ssh",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_PAGER="cat",
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
    )
    base.pop("SSH_AUTH_SOCK", None)
    return base


def _global_config(env: Mapping[str, str], *, hooks: str, templates: str) -> list[tuple[str, str, str, str]]:
    # A global config file in the private HOME rather than GIT_CONFIG_COUNT: git drops GIT_CONFIG_*
    # when it spawns upload-pack for a local clone, and safe.directory must reach that side too.
    config = [
        ("safe", "", "directory", "*"),  # the workspace may belong to another uid than the builder's
        ("protocol", "ext", "allow", "never"),
        ("advice", "", "detachedHead", "false"),
        ("init", "", "defaultBranch", "main"),
        ("init", "", "templateDir", templates),
        ("core", "", "hooksPath", hooks),
    ]
    if env.get("SSL_CERT_FILE"):  # Debian's libcurl has its own CA path compiled in: tell git directly
        config.append(("http", "", "sslCAInfo", env["SSL_CERT_FILE"]))
    return config


def _ssh_command(ssh_key: str, known_hosts: str, owner: files.Owner | None) -> tuple[str, int | None]:
    """GIT_SSH_COMMAND, and the descriptor holding the key (None without one)."""
    ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
    ssh += ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts or '/dev/null'}"]
    ssh += ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
    command = shlex.join(ssh)
    key_fd = None
    if ssh_key:
        key_fd = _key_in_memory(ssh_key, owner)
        # ssh closes every descriptor it inherits before it reads a key, so it reads the one git
        # (its parent, which keeps it open) holds; git runs this through sh, which expands $PPID
        command += f' -i "/proc/$PPID/fd/{key_fd}"'
    if known_hosts:
        if not os.path.exists(known_hosts):
            open(known_hosts, "a").close()
        files.chown(known_hosts, owner)
    return command, key_fd


TEMP_PREFIX = "devcontainer-builder-git-"


def remove_abandoned() -> None:
    """The private folders of builders that were killed before they could remove theirs (each is named
    after its builder's pid). They hold no secret - keys live in memory - but they are litter."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        pid = name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
        if name.startswith(TEMP_PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _key_in_memory(key: str, owner: files.Owner | None) -> int:
    """The key in an anonymous memory file, readable through /proc/<pid>/fd/N of a process that holds it
    and gone when the last descriptor is closed - or when the builder dies, however it dies."""
    fd = os.memfd_create("devcontainer-builder-ssh-key", 0)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        data = (key if key.endswith("\n") else key + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.set_inheritable(fd, False)  # only the git runs that ask for it (pass_fds) get it
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class FetchDir:
    """A throwaway bare repository for fetching into a workspace without git ever reading the
    workspace's configuration while it holds credentials.

    It borrows the workspace's objects (objects/info/alternates) and knows the commits the workspace
    has (refs/haves/*), so the fetch brings only what is new; `git fetch <fetch dir>` in the workspace,
    without credentials, then copies those objects over."""

    git_dir: str

    @staticmethod
    def make(git: Git, workspace_git_dir: str, haves: Sequence[str]) -> FetchDir:
        """Laid out by hand (what `git init --bare` writes, and the config): no process to start."""
        path = git.private_dir("fetch-")
        for folder in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
            files.make_dirs(os.path.join(path, folder), git.owner)
        files.write_atomic(os.path.join(path, "HEAD"), "ref: refs/heads/main\n", owner=git.owner, sync=False)
        # the alternate's refs would be listed by running git in the workspace: the haves below suffice
        config = "[core]\n\trepositoryformatversion = 0\n\tbare = true\n\talternateRefsCommand = true\n"
        files.write_atomic(os.path.join(path, "config"), config, owner=git.owner, sync=False)
        alternates = os.path.join(os.path.realpath(workspace_git_dir), "objects") + "\n"
        files.write_atomic(os.path.join(path, "objects", "info", "alternates"), alternates, owner=git.owner, sync=False)
        shallow = os.path.join(workspace_git_dir, "shallow")
        if os.path.isfile(shallow) and not os.path.islink(shallow):
            text = files.read_text(shallow) or ""
            files.write_atomic(os.path.join(path, "shallow"), text, owner=git.owner, sync=False)
        refs = "".join(f"{sha} refs/haves/{index}\n" for index, sha in enumerate(dict.fromkeys(haves)))
        files.write_atomic(os.path.join(path, "packed-refs"), refs, owner=git.owner, sync=False)
        return FetchDir(path)

    def ref(self, git: Git, name: str) -> str:
        """A ref the fetch wrote: its loose file, else git's answer."""
        text = files.read_text(os.path.join(self.git_dir, name), 100)
        if text and len(text.strip()) == 40:
            return text.strip()
        return git.bare(["rev-parse", "--verify", "--quiet", name], git_dir=self.git_dir).stdout.strip()
