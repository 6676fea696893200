"""code-server in the running devcontainer (or fallback), after Coder's agent: the verified tree in the
workspace's volume, the merged config's extensions, its settings as machine settings, then code-server
itself as the remote user. Whatever goes wrong here is a warning and no editor, never a failed build."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field

from devcontainer_builder.engine.engine import Engine
from devcontainer_builder.ide import container, customizations, gallery, source, vsix
from devcontainer_builder.ide.customizations import Wanted
from devcontainer_builder.log import Log
from devcontainer_builder.settings import limits
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import IdeInfo
from devcontainer_builder.system import files, proc

COPY_TIMEOUT = 600.0
UNPACK_TIMEOUT = 600.0
INSTALL_TIMEOUT = 180.0
LIST_TIMEOUT = 60.0
HEALTH_WAIT = 30
SETTINGS_TIMEOUT = 30.0
LAUNCH_TIMEOUT = HEALTH_WAIT + 30
# the end of limits.IDE_BUDGET kept for the machine settings and code-server's start: they always run
FINISH = SETTINGS_TIMEOUT + LAUNCH_TIMEOUT
MIN_STEP = 5.0  # less left than this: no new step is begun
# what Node prints when a gallery cannot be reached at all (not "not found"): the rest are given up at once
UNREACHABLE = re.compile(
    r"ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH|socket hang up"
)
# pinned versions stay pinned, and a restart asks no gallery: the config may turn these back on
DEFAULT_MACHINE_SETTINGS = {"extensions.autoUpdate": False, "extensions.autoCheckUpdates": False}


@dataclass
class Target:
    """The container the editor goes into."""

    engine: Engine
    container: str
    user: str
    folder: str  # the workspace folder inside the container
    deadline: float | None = None  # time.monotonic() past which no step may run (the editor's budget)

    def within(self, timeout: float) -> float:
        """timeout, cut to what the budget has left (at least a second: a step begun may end)."""
        if self.deadline is None:
            return timeout
        return max(1.0, min(timeout, self.deadline - time.monotonic()))

    def spent(self) -> bool:
        return self.deadline is not None and self.deadline - time.monotonic() < MIN_STEP

    def exec(
        self,
        argv: list[str],
        *,
        as_root: bool = False,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> proc.Result:
        extra = [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
        docker = self.engine
        interactive = ["-i"] if stdin is not None else []
        user = "root" if as_root else self.user
        as_user = ["-u", user] if user else []  # no remote user known: the image's own
        return proc.run(
            [docker.docker, "exec", *interactive, *extra, *as_user, self.container, *argv],
            timeout=self.within(timeout),
            env=docker.env,
            stdin_data=stdin,
        )


@dataclass
class Extensions:
    installed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    gallery_down: str = ""  # why the gallery is not asked again in this start (it did not answer)


def key(settings: Settings) -> str:
    return settings.ide_sha256[:16]


def start(settings: Settings, log: Log, target: Target, folder: str) -> IdeInfo:
    """The editor's state for state.json. folder: the builder's own (in the state dir, out of the
    container's reach) for downloads and the tree's marker."""
    started = time.monotonic()
    finish = target
    target = dataclasses.replace(target, deadline=started + limits.IDE_BUDGET - FINISH)
    user = target.user or "root"
    probe = target.exec(["sh", "-c", container.PROBE, "sh", container.ROOT, key(settings), user], as_root=True)
    if not probe.ok:
        return _unavailable(
            log, f"could not prepare {container.ROOT} in the container ({proc.last_line(probe.stderr)})"
        )
    words = dict(line.split(" ", 1) for line in probe.stdout.splitlines() if " " in line)
    glibc = words.get("glibc", "none")
    if not _glibc_ok(glibc):
        found = "no glibc (musl: Alpine?)" if glibc == "none" else f"glibc {glibc}"
        return _unavailable(
            log,
            f"the image has {found}; code-server needs glibc >= 2.34 (Debian 12+, Ubuntu 22.04+), so this workspace "
            "has no editor in the browser. Base the devcontainer on a newer image to get one.",
        )
    tree = f"{container.ROOT}/{key(settings)}"
    marker = _marker(folder, settings)
    if words.get("tree") != marker:
        if words.get("tree", "missing") != "missing":
            log.warn(f"code-server: {tree} in the container is not the one the builder unpacked: replacing it")
        problem = _install_tree(settings, log, target, folder, marker)
        if problem:
            return _unavailable(log, problem)
    else:
        log.debug(f"code-server: the tree is in {tree} already")
    binary = f"{tree}/bin/code-server"
    wanted = customizations.from_metadata(
        target.engine.inspect_format(target.container, '{{index .Config.Labels "devcontainer.metadata"}}')
    )
    for entry in wanted.skipped:
        log.warn(
            f"customizations.vscode.extensions: {entry!r} is not an extension id (publisher.name[@version]); skipped"
        )
    if wanted.dropped:
        log.warn(
            f"customizations.vscode.extensions: {len(wanted.dropped)} past the first {customizations.MAX_EXTENSIONS} "
            f"are not installed: {', '.join(wanted.dropped)}"
        )
    extensions = install_extensions(settings, log, target, binary, wanted.extensions)
    extensions.missing.extend(wanted.dropped)
    settings_file = write_machine_settings(log, finish, wanted.settings)
    result = launch(finish, binary, gallery_env(settings))
    status, pid, log_path = _answer(result)
    info = IdeInfo(
        status=status if status in ("started", "running") else "failed",
        kind="code-server",
        url=f"http://{container.ADDRESS}",
        pid=pid if pid != "-" else "",
        log=log_path if log_path != "-" else "",
        extensions=extensions.installed,
        missing=extensions.missing,
        settings=settings_file,
    )
    seconds = time.monotonic() - started
    if status == "started":
        log.info(
            f"code-server started (pid {pid}) at {info.url} in the container, healthy after {seconds:.1f} s; "
            f"its log: {log_path}"
        )
    elif status == "running":
        log.info(f"code-server already running (pid {pid}) at {info.url}: not starting another")
    elif status == "taken":
        port = container.ADDRESS.rsplit(":", 1)[1]
        info.error = (
            f"port {port} in the container is taken by another process (one of the repository's, such as a dev "
            f"server or a postStartCommand, listens on it), so code-server cannot listen there and this workspace "
            f"has no editor in the browser. Port {port} is the editor's: move that process to another port and "
            "run `up` again (or restart the workspace)."
        )
        log.warn(f"code-server did not come up: {info.error}")
    else:
        detail = proc.last_line(result.stderr) or f"{status or 'no answer'} (exit {result.returncode})"
        info.error = log.redact(detail)[-2000:]
        log.warn(f"code-server did not come up: {info.error}; its log in the container: {log_path or 'none'}")
    return info


def launch(target: Target, binary: str, env: dict[str, str]) -> proc.Result:
    """code-server started unless it runs already (container.START). env: the admin's gallery, which the
    running editor's Extensions view searches and updates from (code-server's default otherwise)."""
    extensions = f"{container.ROOT}/extensions"
    args = [binary, extensions, target.folder, container.ADDRESS, str(HEALTH_WAIT)]
    return target.exec(["sh", "-c", container.START, "sh", *args], timeout=LAUNCH_TIMEOUT, env=env)


def gallery_env(settings: Settings) -> dict[str, str]:
    """EXTENSIONS_GALLERY for code-server, its installs and the editor alike; none: no gallery at all."""
    if settings.extensions_gallery == "none":
        return {}
    return {"EXTENSIONS_GALLERY": gallery.product_json(settings.extensions_gallery)}


def keep_running(settings: Settings, target: Target) -> tuple[str, str]:
    """For the supervisor's keep-alive: (status, pid) after starting code-server again if it died."""
    status, pid, _ = _answer(launch(target, f"{container.ROOT}/{key(settings)}/bin/code-server", gallery_env(settings)))
    return status, pid


def _answer(result: proc.Result) -> tuple[str, str, str]:
    """container.START's last line: (status, pid, its log's path); failed when it printed none."""
    parts = (result.stdout.strip().splitlines() or [""])[-1].split(" ", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("failed", "", "")


def _glibc_ok(version: str) -> bool:
    parts = version.split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= container.MIN_GLIBC
    except (ValueError, IndexError):
        return False


def _unavailable(log: Log, why: str) -> IdeInfo:
    log.warn(f"no editor: {why}")
    return IdeInfo(status="unavailable", kind="code-server", error=why)


def _marker(folder: str, settings: Settings) -> str:
    """The secret the builder marks its unpacked tree with, kept in its own folder (made once)."""
    path = os.path.join(folder, f"tree-{key(settings)}.marker")
    try:
        with open(path, encoding="ascii") as handle:
            found = handle.read(100).strip()
        if len(found) == 32:
            return found
    except (OSError, UnicodeDecodeError):
        pass
    marker = secrets.token_hex(16)
    os.makedirs(folder, exist_ok=True)
    files.write_atomic(path, marker + "\n", mode=0o600, sync=False)
    return marker


def _install_tree(settings: Settings, log: Log, target: Target, folder: str, marker: str) -> str:
    """The verified tarball unpacked into the workspace's volume; a problem, or ""."""
    try:
        tarball = source.obtain(settings.ide_source, settings.ide_sha256, folder, log, limit=target.within(1e9))
    except source.SourceError as err:
        return f"code-server could not be had: {err}"
    try:
        inside = f"{container.ROOT}/incoming-{key(settings)}.tar.gz"
        log.info(f"code-server: copying it into the container's {container.ROOT} (once: the volume keeps it)")
        copied = proc.run(
            [target.engine.docker, "cp", tarball.path, f"{target.container}:{inside}"],
            timeout=target.within(COPY_TIMEOUT),
            env=target.engine.env,
        )
        if not copied.ok:
            return f"could not copy code-server into the container ({proc.last_line(copied.stderr)})"
        unpacked = target.exec(
            ["sh", "-c", container.UNPACK, "sh", container.ROOT, key(settings), inside, marker],
            as_root=True,
            timeout=UNPACK_TIMEOUT,
        )
        if not unpacked.ok:
            return f"could not unpack code-server in the container ({proc.last_line(unpacked.stderr)})"
    finally:
        source.release(tarball)
    return ""


def installed(target: Target, binary: str) -> dict[str, str]:
    """publisher.name (lower case) -> version of what the extensions folder holds."""
    result = target.exec(
        [binary, "--extensions-dir", f"{container.ROOT}/extensions", "--list-extensions", "--show-versions"],
        timeout=LIST_TIMEOUT,
    )
    found = {}
    for line in result.stdout.splitlines():
        ident, at, version = line.strip().partition("@")
        if at and customizations.EXTENSION_ID.fullmatch(line.strip()):
            found[ident.lower()] = version
    return found


def install_extensions(
    settings: Settings, log: Log, target: Target, binary: str, wanted: tuple[Wanted, ...]
) -> Extensions:
    """Each wanted extension not in the volume yet: from the .vsix folder, else the gallery. One that
    cannot be had is a warning."""
    result = Extensions()
    if not wanted:
        return result
    have = installed(target, binary)
    packages = vsix.index(settings.extensions_folder, log)
    env = gallery_env(settings)
    for index, extension in enumerate(wanted):
        if target.spent():
            rest = [str(w) for w in wanted[index:] if not _present(have, w)]
            if rest:
                log.warn(
                    f"the editor's budget ({limits.IDE_BUDGET} s) is spent: {len(rest)} extensions are not "
                    f"installed in this start (the next one goes on): {', '.join(rest)}"
                )
            result.installed.extend(f"{w.id}@{have[w.key]}" for w in wanted[index:] if _present(have, w))
            result.missing.extend(rest)
            break
        if _present(have, extension):
            result.installed.append(f"{extension.id}@{have[extension.key]}")
            continue
        problem = _install_one(
            settings=settings,
            log=log,
            target=target,
            binary=binary,
            extension=extension,
            packages=packages,
            env=env,
            result=result,
        )
        if problem:
            log.warn(f"extension {extension} is not installed: {problem}")
            result.missing.append(str(extension))
    if len(result.installed) != len(wanted) - len(result.missing):
        have = installed(target, binary) or have
        result.installed = [f"{w.id}@{have[w.key]}" for w in wanted if w.key in have]
    return result


def _present(have: dict[str, str], extension: Wanted) -> bool:
    version = have.get(extension.key)
    return version is not None and (not extension.version or extension.version == version)


def _install_one(
    *,
    settings: Settings,
    log: Log,
    target: Target,
    binary: str,
    extension: Wanted,
    packages: list[vsix.Package],
    env: dict[str, str],
    result: Extensions,
) -> str:
    """ "" once installed, else why not. A gallery that did not answer (result.gallery_down) is not asked
    again: each try would wait INSTALL_TIMEOUT for nothing."""
    base = [binary, "--extensions-dir", f"{container.ROOT}/extensions", "--force"]
    package = vsix.choose(packages, extension)
    if package is not None:
        inside = f"{container.ROOT}/incoming-{os.urandom(6).hex()}.vsix"
        copied = proc.run(
            [target.engine.docker, "cp", package.path, f"{target.container}:{inside}"],
            timeout=target.within(COPY_TIMEOUT),
            env=target.engine.env,
        )
        if copied.ok:
            target.exec(["chmod", "0644", inside], as_root=True)
            done = target.exec([*base, "--install-extension", inside], timeout=INSTALL_TIMEOUT)
            target.exec(["rm", "-f", inside], as_root=True)
            if done.ok:
                log.info(f"extension {extension.id}@{package.version} installed from {os.path.basename(package.path)}")
                return ""
            log.warn(f"extension {extension}: {os.path.basename(package.path)} did not install ({_reason(done)})")
        else:
            log.warn(f"extension {extension}: could not copy {package.path} into the container")
    if not env:
        return (
            "not in DEVCONTAINER_EXTENSIONS_FOLDER, and no gallery is configured (DEVCONTAINER_EXTENSIONS_GALLERY=none)"
        )
    if result.gallery_down:
        return f"{settings.extensions_gallery} is not asked again: {result.gallery_down}"
    done = target.exec([*base, "--install-extension", str(extension)], timeout=INSTALL_TIMEOUT, env=env)
    if done.ok:
        log.info(f"extension {extension} installed from {settings.extensions_gallery}")
        return ""
    reason = _reason(done)
    if done.timed_out or UNREACHABLE.search(done.stdout + done.stderr):
        result.gallery_down = f"it did not answer for {extension} ({reason})"
    return f"{settings.extensions_gallery}: {reason}"


def _reason(result: proc.Result) -> str:
    if result.timed_out:
        return f"no answer within {INSTALL_TIMEOUT:.0f} s"
    lines = [line for line in (result.stdout + "\n" + result.stderr).splitlines() if line.strip()]
    return (lines[-1].strip() if lines else f"exit {result.returncode}")[:300]


def write_machine_settings(log: Log, target: Target, wanted: dict[str, object]) -> str:
    """customizations.vscode.settings as code-server's machine settings; the user's own are untouched."""
    text = json.dumps({**DEFAULT_MACHINE_SETTINGS, **wanted}, indent=2) + "\n"
    result = target.exec(["sh", "-c", container.MACHINE_SETTINGS], stdin=text.encode(), timeout=SETTINGS_TIMEOUT)
    if not result.ok:
        log.warn(f"could not write code-server's machine settings ({proc.last_line(result.stderr)})")
        return ""
    return result.stdout.strip()
