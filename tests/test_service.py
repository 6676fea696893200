"""`devcontainer-builder install-service`: the systemd unit a VM runs the builder with, checked by the real
`systemd-analyze verify` (the VM module's first boot, which runs it, is rehearsed in
template/test_vm_host.py)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from devcontainer_builder.host.systemd import TIMINGS
from devcontainer_builder.settings import limits
from devcontainer_builder.settings.options import load_only
from support.builder import BUILDER, base_env

pytestmark = [pytest.mark.needs_root]  # the env file must be root's; the unit names another user
USER = "dcb-user"


def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BUILDER, "install-service", *args], env=base_env(), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def env_file(folder: Path, mode: int = 0o600) -> Path:
    path = folder / "workspace.env"
    path.write_text('DEVCONTAINER_REPOSITORY="https://github.com/acme/app.git"\n')
    path.chmod(mode)
    return path


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def units(sandbox: Path, mode: int = 0o755) -> Path:
    folder = sandbox / "units"
    folder.mkdir()
    folder.chmod(mode)
    return folder


def test_the_unit_runs_up_then_serve_as_the_user_and_verifies_clean(sandbox: Path) -> None:
    env = env_file(sandbox)
    units(sandbox)
    done = install("--user", USER, "--env-file", str(env), "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 0, done.stderr
    unit = sandbox / "units" / "devcontainer-builder.service"
    assert f"wrote {unit}" in done.stdout and "systemctl enable --now devcontainer-builder.service" in done.stdout
    text = unit.read_text()
    account = pwd.getpwnam(USER)
    for line in (f"User={USER}", f"EnvironmentFile={env}", f"Environment=XDG_RUNTIME_DIR=/run/user/{account.pw_uid}",
                 f"ExecStartPre=-{BUILDER} up", f"ExecStart={BUILDER} serve", "Restart=on-failure",
                 "KillMode=process", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "WantedBy=multi-user.target"):  # fmt: skip
        assert line in text.splitlines(), line
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    checked = verify(unit)
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stderr
    assert "GH_TOKEN" not in text and "TOKEN" not in text, "secrets live in the env file only"


def test_print_shows_the_same_unit_without_writing(sandbox: Path) -> None:
    shown = install("--user", USER, "--env-file", str(sandbox / "later.env"), "--print")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Written by `devcontainer-builder install-service`")
    assert f"EnvironmentFile={sandbox / 'later.env'}" in shown.stdout
    assert not (sandbox / "later.env").exists()


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (lambda d: env_file(d, 0o644), "must be root's with mode 0600 (it is uid 0, mode 0644)"),
        (lambda d: (env_file(d), os.chown(d / "workspace.env", 1000, 1000)), "must be root's with mode 0600 (it is uid 1000"),
        (lambda d: None, "does not exist: write the workspace's settings there first"),
    ],
    ids=["readable-by-others", "not-roots", "missing"],
)  # fmt: skip
def test_an_env_file_others_could_read_or_write_is_refused(sandbox: Path, prepare, expected: str) -> None:
    prepare(sandbox)
    done = install("--user", USER, "--env-file", str(sandbox / "workspace.env"), "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 2, done.stdout
    assert expected in " ".join(done.stderr.split())  # the message is wrapped to the terminal
    assert not (sandbox / "units").exists(), "nothing is written"


@pytest.mark.parametrize(
    ("user", "expected"),
    [("nobody-here", "there is no user 'nobody-here'"), ("root", "not root (rootless Podman)"),
     ("nobody", "is not a folder the service can start in")],
)  # fmt: skip
def test_the_service_runs_as_an_existing_ordinary_user(sandbox: Path, user: str, expected: str) -> None:
    done = install("--user", user, "--env-file", str(env_file(sandbox)), "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 2 and expected in " ".join(done.stderr.split()), done.stderr


def test_a_relative_env_file_and_a_strange_name_are_refused_together(sandbox: Path) -> None:
    done = install("--user", USER, "--env-file", "workspace.env", "--name", "../evil", "--unit-dir", str(sandbox))
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "must be a plain unit name" in said and "must be an absolute path" in said


@pytest.mark.parametrize(
    ("name", "env_path", "expected"),
    [("devcontainer-builder", "/etc/dcb-test/nl\nExecStartPre=/bin/touch /tmp/x/e.env", "must be an absolute path"),
     ("devcontainer-builder", "/etc/dcb-test/%h.env", "must be an absolute path"),
     ("devcontainer-builder", "/etc/dcb-test/with space.env", "must be an absolute path"),
     ("a@", "/etc/dcb-test/ws.env", "plain unit name"), ("é٣", "/etc/dcb-test/ws.env", "plain unit name"),
     ("x" * 300, "/etc/dcb-test/ws.env", "plain unit name")],
    ids=["newline", "specifier", "space", "template-unit", "unicode", "too-long"],
)  # fmt: skip
def test_nothing_reaches_the_unit_that_systemd_would_read_otherwise(sandbox: Path, name: str, env_path: str,
                                                                    expected: str) -> None:  # fmt: skip
    done = install("--user", USER, "--env-file", env_path, "--name", name, "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 2 and expected in " ".join(done.stderr.split()), done.stderr
    assert not (sandbox / "units").exists()


def test_an_env_file_someone_else_could_swap_is_refused(sandbox: Path) -> None:
    """systemd reads the env file as root: a folder the user may write, or a link, would let them point the
    service at any root-only file."""
    theirs = sandbox / "theirs"
    theirs.mkdir()
    os.chown(theirs, 1000, 1000)
    in_their_folder = env_file(theirs)
    done = install("--user", USER, "--env-file", str(in_their_folder), "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 2 and "must be root's and writable by root only (it is uid 1000" in " ".join(
        done.stderr.split()
    ), done.stderr
    shared = sandbox / "shared"  # root's and sticky, but writable by a group: no protection from its members
    shared.mkdir()
    shared.chmod(0o1770)
    done = install("--user", USER, "--env-file", str(env_file(shared)), "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 2 and "writable by root only (it is uid 0, mode 1770)" in " ".join(done.stderr.split()), (
        done.stderr
    )
    link = sandbox / "link.env"
    link.symlink_to(env_file(sandbox))
    done = install("--user", USER, "--env-file", str(link), "--unit-dir", str(sandbox / "units"))
    assert done.returncode == 2 and "goes through a symbolic link" in " ".join(done.stderr.split()), done.stderr


def test_a_service_that_exits_for_bad_input_is_not_restarted_for_ever(sandbox: Path) -> None:
    shown = install("--user", USER, "--print")
    lines = shown.stdout.splitlines()
    assert "RestartPreventExitStatus=2" in lines, "exit 2 is bad input: restarting cannot help"
    assert "StartLimitBurst=5" in lines and "StartLimitIntervalSec=600" in lines


@pytest.mark.parametrize(
    ("unit_dir", "expected"),
    [(lambda d: "units", "--unit-dir must be an absolute path"),
     (lambda d: str(d / "missing"), "is not an existing folder: systemd reads units from /etc/systemd/system"),
     (lambda d: str(units(d, 0o777)), "is writable by others than root (mode 0777)"),
     (lambda d: str(units(d, 0o1777)), "is writable by others than root (mode 1777)"),
     (lambda d: (units(d), os.chown(d / "units", 1000, 1000))[0], "must be root's and writable by root only (it is "
      "uid 1000")],
    ids=["relative", "missing", "world-writable", "sticky", "not-roots"],
)  # fmt: skip
def test_a_unit_dir_that_is_relative_missing_or_writable_by_others_is_refused(
    sandbox: Path, unit_dir, expected
) -> None:
    """Each was accepted: a unit in a folder systemd never reads, or one another user could put a unit in."""
    folder = str(unit_dir(sandbox))
    done = install("--user", USER, "--env-file", str(env_file(sandbox)), "--unit-dir", folder)
    assert done.returncode == 2 and expected in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr
    assert not list(sandbox.rglob("*.service")), "nothing is written"


def test_a_name_given_with_its_service_suffix_names_the_unit_once(sandbox: Path) -> None:
    """`--name x.service` wrote x.service.service."""
    folder = units(sandbox)
    done = install("--user", USER, "--env-file", str(env_file(sandbox)), "--name", "ws-app.service",
                   "--unit-dir", str(folder))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [path.name for path in folder.iterdir()] == ["ws-app.service"]


def test_the_start_limit_follows_the_env_files_timeouts_and_a_bad_one_is_refused(sandbox: Path) -> None:
    """TimeoutStartSec=3600 could kill an `up` the builder allowed: its lock wait alone was 5,520 s."""
    folder = units(sandbox)
    env = env_file(sandbox)
    env.write_text(env.read_text() + 'DEVCONTAINER_BUILD_TIMEOUT="7200"\n')
    done = install("--user", USER, "--env-file", str(env), "--unit-dir", str(folder))
    assert done.returncode == 0, done.stderr
    unit = folder / "devcontainer-builder.service"
    timings = load_only(TIMINGS, {"DEVCONTAINER_BUILD_TIMEOUT": "7200"})
    assert f"TimeoutStartSec={limits.start_limit(timings)}" in unit.read_text().splitlines()
    assert limits.start_limit(timings) >= limits.lock_timeout(timings) + 2 * 7200
    checked = verify(unit)
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stderr

    env.write_text(env.read_text() + "DEVCONTAINER_GIT_RETRIES=many\n")
    refused = install("--user", USER, "--env-file", str(env), "--unit-dir", str(folder))
    message = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and f"in {env}: DEVCONTAINER_GIT_RETRIES 'many'" in message, refused.stderr
