"""The command line: `up`, `serve`, `rebuild`, `status`, `install-service` and `options`, with the settings'
flags generated from the options table.

Run through launch.py, which has already moved every secret off the process environment.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import sys
import textwrap
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from devcontainer_builder.errors import EXIT_INVALID_INPUT, EXIT_NOT_RUNNING, BuilderError, BuildFailed, Terminated
from devcontainer_builder.host.systemd import DEFAULT_ENV_FILE, DEFAULT_UNIT_DIR
from devcontainer_builder.host.systemd import DEFAULT_NAME as DEFAULT_SERVICE
from devcontainer_builder.log import Log, Redactor, Sink, TerminalSink
from devcontainer_builder.settings import options as opts
from devcontainer_builder.settings import secrets

if TYPE_CHECKING:
    from devcontainer_builder.state.record import State


def option_flags(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one click option per setting of `command`, from the options table."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(opts.options_for(command)):
            if option.flag is None:
                continue
            help_text = f"{option.help} [env: {option.env}; default: {option.shown_default}]"
            if option.switch:
                function = click.option(option.flag, option.name, flag_value=True, default=None, help=help_text)(
                    function
                )
            else:
                # the value is converted in settings.load, with the environment's, so that every problem
                # is reported at once; the type still names the value's form in --help
                function = click.option(
                    option.flag, option.name, default=None, metavar=option.type.name.upper(), help=help_text
                )(function)
        return function

    return decorate


class SettingsCommand(click.Command):
    """A command whose --help lists a user's options first and the plumbing (Option.advanced) in a group
    of its own after them."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        advanced = {option.name for option in opts.OPTIONS if option.advanced}
        user: list[tuple[str, str]] = []
        plumbing: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (plumbing if param.name in advanced else user).append(record)
        with formatter.section("Options"):
            formatter.write_dl(user)
        if plumbing:
            with formatter.section(opts.ADVANCED_HEADING):
                formatter.write_dl(plumbing)


def fail(message: str, code: int) -> NoReturn:
    width = 100
    paragraph = "\n".join(
        # never inside a word: a path or a URL stays one piece (copied from the terminal, it works)
        textwrap.fill(
            line,
            width,
            subsequent_indent="    " if line.startswith("  - ") else "",
            break_on_hyphens=False,
            break_long_words=False,
        )
        for line in message.splitlines()
    )
    click.echo(f"devcontainer-builder: {paragraph}", err=True)
    sys.exit(code)


def load_settings(command: str, flags: dict[str, Any]) -> opts.Settings:
    """Flags over the environment, with the secrets launch.py took off it put back in view."""
    try:
        return opts.load(command, flags, collections.ChainMap(secrets.received, os.environ))
    except BuilderError as err:
        fail(err.message, err.exit_code)


terminated_by = ""  # the signal that stopped `up`, for an entrypoint that would go on to `serve`


def _terminate(signum: int, frame: Any) -> NoReturn:
    global terminated_by  # noqa: PLW0603 - one flag for the one process
    terminated_by = signal.Signals(signum).name
    raise Terminated(terminated_by)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="devcontainer-builder", prog_name="devcontainer-builder")
def main() -> None:
    """Turn a repository's devcontainer.json into a running workspace container.

    Settings come from environment variables (as a Coder template sets them) or the matching flags;
    `devcontainer-builder options` lists them all. Secrets (GH_TOKEN, SSH keys, the agent token) are
    read from the environment only, and the builder moves them off its own environment at start.
    """


@main.command(cls=SettingsCommand)
@option_flags("up")
def up(**flags: Any) -> None:
    """Clone or update the repository, resolve its devcontainer config and bring the container up.

    When that fails, the fallback image is brought up instead, with the failure explained in
    .devcontainer-build-error.log in the workspace and a banner on the first shell.

    \b
    Exit codes:
      0  the workspace container is running (healthy, or degraded on the fallback image)
      1  it is not running: even the fallback failed, SIGTERM, or another builder held the workspace
         for longer than a build may take (see the message and build.log)
      2  invalid input: a message names every problem and how to fix it
    """
    from devcontainer_builder.state.record import BUILD_ID_VAR, TRIGGER_VAR  # noqa: PLC0415

    settings = load_settings("up", flags)
    # set by the supervisor for the builds it starts (a rebuild, keep-alive): not settings
    trigger = os.environ.pop(TRIGGER_VAR, "") or "start"
    build_id = os.environ.pop(BUILD_ID_VAR, "")
    sys.exit(run_up(settings, trigger, build_id))


def trust_extra_certificates(settings: opts.Settings) -> None:
    if settings.ca_bundle:
        from devcontainer_builder.system import trust  # noqa: PLC0415

        trust.trust(settings.ca_bundle, os.environ)


def run_up(settings: opts.Settings, trigger: str, build_id: str) -> int:
    from devcontainer_builder.system import caps  # noqa: PLC0415
    from devcontainer_builder.up import pipeline  # noqa: PLC0415 - only `up` and `rebuild` need the pipeline

    caps.drop_ambient()  # the VM unit's CAP_NET_BIND_SERVICE is serve's alone: never the CLI's or a hook's
    signal.signal(signal.SIGTERM, _terminate)
    trust_extra_certificates(settings)
    log, coder = start_log(settings)
    try:
        code = pipeline.up(settings, os.environ, log, trigger=trigger, build_id=build_id)
    except BuilderError as err:
        fail(log.redact(err.message), err.exit_code)
    except Terminated as err:
        fail(f"stopped by {err} before the workspace was running.", EXIT_NOT_RUNNING)
    except KeyboardInterrupt:
        fail("interrupted before the workspace was running.", EXIT_NOT_RUNNING)
    except OSError as err:
        fail(f"{log.redact(str(err))}. The workspace is not running.", EXIT_NOT_RUNNING)
    except Exception as err:  # a bug: say so in one paragraph, keep the traceback out of the way
        log.debug(traceback.format_exc())
        fail(f"unexpected error ({type(err).__name__}: {log.redact(str(err))}); this is a bug.", EXIT_NOT_RUNNING)
    finally:
        stop_log(log, coder)
    return code


def start_log(settings: opts.Settings) -> tuple[Log, Sink | None]:
    """The terminal, and Coder's build log when the template configured it."""
    log = Log(Redactor(settings.redactable))
    log.add_sink(TerminalSink(settings.log_level))
    return log, coder_sink(settings, log)


def stop_log(log: Log, coder: Sink | None) -> None:
    if coder is not None:
        log.remove_sink(coder)  # flushes the tail to Coder within its grace period
    log.close()


def as_environment(command: str, flags: dict[str, Any]) -> dict[str, str]:
    """The flags given, as the environment variables they stand for (for a child that reads those)."""
    env = {}
    for option in opts.options_for(command):
        value = flags.get(option.name)
        if value not in (None, ()):
            env[option.env] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def coder_sink(settings: opts.Settings, log: Log) -> Sink | None:
    """Stream to Coder when the template gave us its agent's URL and token; standalone otherwise."""
    if not settings.coder_agent_url:
        return None
    from devcontainer_builder.coder.logs import CoderLogSink  # noqa: PLC0415 - standalone runs never need it

    sink: CoderLogSink | None = None

    def notify(level: str, text: str) -> None:
        log.emit(level, text, exclude=sink)

    sink = CoderLogSink(
        settings.coder_agent_url,
        settings.coder_agent_token,
        workspace=settings.workspace_folder,
        full_log=os.path.join(settings.state_dir, "build.log"),
        notify=notify,
        level=settings.coder_log_level,
    )
    log.add_sink(sink)
    return sink


@main.command(cls=SettingsCommand)
@option_flags("serve")
def serve(**flags: Any) -> None:
    """The supervisor: status page and JSON API, rebuilds, rebuild suggestions, keep-alive.

    Runs until SIGTERM (the pod's main container, or a service on a VM or Docker host), after `up`
    brought the workspace up. It listens on DEVCONTAINER_SERVE_ADDRESS (loopback by default) and
    writes serve.json into the state dir so `devcontainer-builder rebuild` finds it. It never builds
    on its own: rebuilds are asked for (the page's buttons, POST /api/rebuild, `rebuild`), and
    keep-alive brings a stopped container or a dead agent back.

    \b
    Exit codes:
      0  stopped by SIGTERM (the devcontainer keeps running)
      1  another `serve` is already serving this workspace's state dir
      2  invalid input, or an address that is not this machine's (a busy one is waited for)
    """
    from devcontainer_builder.supervisor import serve as supervisor  # noqa: PLC0415 - only `serve` needs it

    settings = load_settings("serve", flags)
    trust_extra_certificates(settings)
    log, coder = start_log(settings)
    # what each build's `up` reads; whether it rebuilds is the build's own (a rebuild, or keep-alive)
    children = {**os.environ, **as_environment("serve", flags)}
    for name in ("DEVCONTAINER_REBUILD", "DEVCONTAINER_REBUILD_FULL", "DEVCONTAINER_REBUILD_ID"):
        children.pop(name, None)
    try:
        code = supervisor.serve(settings, os.environ, children, log, _version())
    except BuilderError as err:
        fail(log.redact(err.message), err.exit_code)
    finally:
        stop_log(log, coder)
    sys.exit(code)


@main.command(cls=SettingsCommand)
@option_flags("rebuild")
@click.option("--full", is_flag=True, help="Build without the layer cache (--build-no-cache, no --cache-from).")
@click.option("--no-wait", is_flag=True, help="Return once the supervisor has started the build.")
def rebuild(full: bool, no_wait: bool, **flags: Any) -> None:
    """Rebuild the devcontainer from the repository's config, replacing the container.

    Asks the running supervisor (found through serve.json in the state dir) and follows the build's
    log until it ends; a build already running is followed instead of starting another. With no
    supervisor running, rebuilds in this process. The workspace folder and the user's files are
    never touched; a failure brings up the fallback image, as `up` does.

    \b
    Exit codes: as `up` (0 running, 1 not running, 2 invalid input).
    """

    from devcontainer_builder.state.store import StateDir  # noqa: PLC0415
    from devcontainer_builder.supervisor import client  # noqa: PLC0415

    settings = load_settings("rebuild", flags)
    try:
        base = client.find(StateDir(settings.state_dir))
    except client.Unreachable as err:
        fail(str(err), EXIT_NOT_RUNNING)
    if base is not None:
        ignored = [
            str(option.flag)
            for option in opts.options_for("rebuild")
            if flags.get(option.name) not in (None, ()) and option.name != "state_dir"
        ]
        if ignored:
            click.echo(
                f"devcontainer-builder: {', '.join(ignored)} ignored: the running supervisor "
                "rebuilds with its own settings (a rebuild takes no flags, paths or config from the caller).",
                err=True,
            )
        sys.exit(client.rebuild(base, full=full, wait=not no_wait, say=click.echo))
    click.echo("no supervisor is running for this workspace: rebuilding in this process")
    in_process = dataclasses.replace(settings, rebuild=True, rebuild_full=full)
    sys.exit(run_up(in_process, "full-rebuild" if full else "rebuild", ""))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("devcontainer-builder")
    except PackageNotFoundError:
        return "unknown"


@main.command(cls=SettingsCommand)
@option_flags("status")
@click.option("--json", "as_json", is_flag=True, help="Print state.json and recent events as one JSON document.")
@click.option("--short", is_flag=True, help="One line, for Coder's agent metadata (no engine call).")
def status(as_json: bool, short: bool, **flags: Any) -> None:
    """Show the workspace's state: status, container, config, last error and recent events.

    Exit code 0 when the workspace is running (healthy or degraded), 1 otherwise.
    """
    from devcontainer_builder.state import report as status_report  # noqa: PLC0415 - only `status` needs it
    from devcontainer_builder.state.store import StateDir  # noqa: PLC0415

    settings = load_settings("status", flags)
    report = status_report.collect(StateDir(settings.state_dir), events=0 if short else status_report.EVENTS_SHOWN)
    if not short and report.state.status in ("running", "degraded") and report.state.container_id:
        now = _container_now(settings, report.state)
        report = dataclasses.replace(report, container_now=now)
    if short:
        click.echo(status_report.short(report))
    else:
        click.echo(status_report.as_json(report) if as_json else status_report.render(report), nl=False)
    sys.exit(0 if report.state.status in ("running", "degraded") and not report.container_lost else 1)


def _container_now(settings: opts.Settings, state: State) -> str | None:
    """The engine's status of the container state.json names; None when the engine does not answer."""
    from devcontainer_builder.engine import detect  # noqa: PLC0415
    from devcontainer_builder.engine.engine import Engine  # noqa: PLC0415
    from devcontainer_builder.system import environment  # noqa: PLC0415

    try:
        choice = detect.choose_as_before(settings.docker_path, os.environ, state)
        engine = Engine(choice.path, environment.for_engine(os.environ, settings.workspace_folder), choice.kind)
        return engine.container_status(state.container_id)
    except (BuildFailed, OSError):
        return None


@main.command("install-service")
@click.option(
    "--user",
    "user",
    required=True,
    metavar="NAME",
    help="The workspace's user: the service, rootless Podman and the workspace's files are theirs.",
)
@click.option(
    "--env-file",
    default=DEFAULT_ENV_FILE,
    show_default=True,
    metavar="PATH",
    help="The workspace's settings and secrets (VAR=\"value\" lines); must be root's, mode 0600.",
)
@click.option("--name", default=DEFAULT_SERVICE, show_default=True, help="The unit's name, without .service.")
@click.option("--unit-dir", default=DEFAULT_UNIT_DIR, show_default=True, metavar="DIR", help="Where to write the unit.")
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the unit instead of writing it (the env file unread: the start limit at the default timeouts).",
)
@click.option(
    "--enable",
    is_flag=True,
    help="Then `systemctl daemon-reload` and `systemctl enable --now --no-block` it (the build runs on).",
)
def install_service(*, user: str, env_file: str, name: str, unit_dir: str, print_only: bool, enable: bool) -> None:
    """Install the builder as a systemd service for a VM: `up` at boot, then `serve`, as USER.

    The unit reads the workspace's settings (DEVCONTAINER_REPOSITORY, CODER_AGENT_TOKEN, ...) from the
    env file, which systemd reads as root before it starts the builder as USER; it restarts the builder
    when it fails, and stopping it leaves the workspace's containers running. template/modules/vm-host
    runs this at first boot; docs/vm-host.md explains the unit line by line.

    \b
    Exit codes:
      0  written (and enabled, with --enable)
      1  systemctl failed
      2  invalid input: no such user, the env file missing or readable by others, the tools not installed
    """
    from devcontainer_builder.host import systemd  # noqa: PLC0415
    from devcontainer_builder.system import environment, proc  # noqa: PLC0415

    try:
        service = systemd.describe(name, user, env_file, os.environ.get("PATH", os.defpath))
        if print_only:
            click.echo(systemd.unit_text(service), nl=False)
            return
        path = systemd.install(service, unit_dir)
    except BuilderError as err:
        fail(err.message, err.exit_code)
    except OSError as err:
        fail(f"cannot write the unit into {unit_dir}: {err.strerror}", EXIT_INVALID_INPUT)
    click.echo(f"wrote {path}")
    if not enable:
        click.echo(f"start it with: systemctl daemon-reload && systemctl enable --now {service.unit_name}")
        return
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "--no-block", service.unit_name]):
        result = proc.run(argv, timeout=120, env=environment.minimal(os.environ))
        if not result.ok:
            fail(f"{' '.join(argv)} failed: {proc.last_line(result.stderr)}", EXIT_NOT_RUNNING)
    click.echo(f"enabled {service.unit_name}; it is starting (journalctl -fu {service.unit_name})")


@main.command("options")
def list_options() -> None:
    """List every setting: environment variable, flag, default and meaning."""
    for advanced in (False, True):
        if advanced:
            click.echo(f"\n{opts.ADVANCED_HEADING}:\n")
        for option in (option for option in opts.OPTIONS if option.advanced == advanced):
            flag = option.flag or ("(environment only: secret)" if option.secret else "(environment only)")
            click.echo(f"{option.env}  {flag}  [default: {option.shown_default}]")
            click.echo(textwrap.indent(textwrap.fill(option.help, 96), "    "))


if __name__ == "__main__":
    main()
