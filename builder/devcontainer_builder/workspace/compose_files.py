"""A devcontainer's Docker Compose files, read before compose reads them.

Compose reads more files than the config names: what they `include`, the files their services
`extends`, their `env_file`s and the `.env` beside the first one. Each is read on the builder's side
when compose loads the project, so each must be inside the repository (a repository must not make
compose read `/var/run/secrets/...` into a container's environment), and its path must be literal:
`${...}` in such a path cannot be checked before compose expands it. What compose then runs - the
merged model, with the devcontainer CLI's own override files - is checked by the engine's policy
(policy/compose_rules.py) at every `compose up` and `compose build`.

The same walk lists what a compose config is built from (every compose file, env file, Dockerfile and
build context), for the container's identity hash and rebuild suggestions.

YAML is read with PyYAML's safe loader (no object construction), plus compose's own `!reset` and
`!override` tags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.workspace import layout

MAX_FILES = 64  # compose files followed through include and extends
MAX_BYTES = 4 * 1024**2  # one compose file; a real one is a few KiB


class _Loader(yaml.SafeLoader):
    """The safe loader, knowing compose's merge tags (their values are what matters here)."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("!reset", _tagged)
_Loader.add_constructor("!override", _tagged)


@dataclass(frozen=True)
class Build:
    service: str
    context: str  # absolute; "" for a context that is not a folder (a URL) or not literal
    dockerfile: str  # absolute; "" when inline or not literal


@dataclass
class Project:
    """What compose would read for the config, as far as the files say without expanding variables."""

    files: list[str] = field(default_factory=list)  # every compose file, absolute, in the order read
    env_files: list[str] = field(default_factory=list)  # env_file entries and the project's .env
    builds: list[Build] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # every service the files define

    @property
    def inputs(self) -> list[str]:
        """The files this project is built from (identity and suggestions)."""
        found = [*self.files, *self.env_files]
        found += [build.dockerfile for build in self.builds if build.dockerfile]
        return sorted(set(found))


def _literal(value: object) -> bool:
    return isinstance(value, str) and "$" not in value


class _Walk:
    def __init__(self, workspace: str | None, shown_root: str) -> None:
        self.workspace = workspace  # None: list only, check nothing (the supervisor's suggestions)
        self.shown_root = shown_root
        self.project = Project()
        self.seen: set[str] = set()

    def shown(self, path: str) -> str:
        return os.path.relpath(path, self.shown_root) if path.startswith(self.shown_root) else path

    def refuse(self, message: str) -> None:
        if self.workspace is not None:
            raise BuildFailed(message, step="config")

    def confined(self, path: str, what: str, origin: str) -> bool:
        """path is inside the repository (links resolved); when checking, a refusal otherwise."""
        from devcontainer_builder.workspace import confine  # noqa: PLC0415

        if self.workspace is None or confine.inside(self.workspace, path):
            return True
        real = os.path.realpath(path)
        self.refuse(
            f"{self.shown(origin)} makes compose read {what} {path} (really {real}), outside the repository "
            f"({self.workspace}). Compose reads it on the builder's side, where a repository may read nothing but "
            "itself: keep the file inside the repository."
        )
        return False

    def path_field(self, value: object, bases: list[str], what: str, origin: str) -> list[str]:
        """A path compose reads while loading the project, resolved against each base it may be
        relative to (the file's folder, the project's); [] when it cannot be used."""
        if not isinstance(value, str) or not value:
            return []
        if not _literal(value):
            self.refuse(
                f"{self.shown(origin)} names {what} through a variable ({value}); compose would read a path the "
                "builder cannot check first. Write the path itself."
            )
            return []
        candidates = [os.path.normpath(os.path.join(base, os.path.expanduser(value))) for base in bases]
        unique = list(dict.fromkeys(candidates))
        if not all(self.confined(path, what, origin) for path in unique):
            return []
        return unique[:1]

    def load(self, path: str, origin: str) -> dict[str, Any] | None:
        if len(self.seen) >= MAX_FILES:
            self.refuse(f"the compose files include or extend more than {MAX_FILES} files; that is not a devcontainer.")
            return None
        real = os.path.realpath(path)
        if real in self.seen:
            return None  # included twice, or a cycle: compose reports cycles itself
        self.seen.add(real)
        self.project.files.append(path)
        shown = self.shown(path)
        try:
            if not os.path.isfile(path):
                self.refuse(f"{self.shown(origin)} uses the compose file {shown}, which does not exist.")
                return None
            if os.path.getsize(path) > MAX_BYTES:
                self.refuse(f"the compose file {shown} is larger than {MAX_BYTES // 1024**2} MiB.")
                return None
            with open(path, encoding="utf-8") as handle:
                data = yaml.load(handle, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except UnicodeDecodeError:
            self.refuse(f"the compose file {shown} is not valid UTF-8 text.")
            return None
        except OSError as err:
            self.refuse(f"cannot read the compose file {shown}: {err.strerror}.")
            return None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            self.refuse(f"the compose file {shown} is not valid YAML: {problem}{where}.")
            return None
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.refuse(f"the compose file {shown} must hold a mapping (services: ...), not a {type(data).__name__}.")
            return None
        return data

    def file(self, path: str, project_dir: str, origin: str, *, defines: bool = True) -> None:
        """One compose file and what it reads; `defines`: its services are the project's (not so for a
        file that is only extended)."""
        data = self.load(path, origin)
        if data is None:
            return
        here = os.path.dirname(path)
        bases = [here, project_dir]
        for item in _items(data.get("include")):
            entry = item if isinstance(item, dict) else {"path": item}
            included_dir = entry.get("project_directory")
            paths = entry.get("path")
            for name in paths if isinstance(paths, list) else [paths]:
                for found in self.path_field(name, bases, "the included compose file", path):
                    directory = self.path_field(included_dir, bases, "the project directory", path) or [
                        os.path.dirname(found)
                    ]
                    self.file(found, directory[0], path)
            for env_file in _items(entry.get("env_file")):
                self.project.env_files += self.path_field(env_file, bases, "the env file", path)
        services = data.get("services")
        if not isinstance(services, dict):
            return
        for name, service in services.items():
            if not isinstance(service, dict):
                continue
            if defines and str(name) not in self.project.services:
                self.project.services.append(str(name))
            extends = service.get("extends")
            if isinstance(extends, dict) and "file" in extends:
                for found in self.path_field(extends.get("file"), [here], "the extended compose file", path):
                    self.file(found, project_dir, path, defines=False)
            for entry in _items(service.get("env_file")):
                value = entry.get("path") if isinstance(entry, dict) else entry
                self.project.env_files += self.path_field(value, bases, "the env file", path)
            self.build(str(name), service.get("build"), bases, path)

    def build(self, service: str, build: object, bases: list[str], origin: str) -> None:
        """What a service builds from. The devcontainer CLI reads the Dockerfile of the devcontainer's
        service itself (its base image, for features) before compose runs and the policy sees the build:
        a context or Dockerfile outside the repository is refused here, first."""
        if build is None:
            return
        section = build if isinstance(build, dict) else {"context": build}
        context = section.get("context", ".")
        if "://" in str(context) or str(context).startswith("git@"):
            self.project.builds.append(Build(service, "", ""))  # remote: the policy refuses it at the build
            return
        if not _literal(context):
            self.refuse(
                f"{self.shown(origin)} names the build context of {service} through a variable ({context}); the "
                "builder cannot check it before the devcontainer CLI reads it. Write the path itself."
            )
            self.project.builds.append(Build(service, "", ""))
            return
        folder = os.path.normpath(os.path.join(bases[0], os.path.expanduser(str(context))))
        dockerfile = section.get("dockerfile", "Dockerfile")
        if not self.confined(folder, "the build context", origin) or "dockerfile_inline" in section:
            self.project.builds.append(Build(service, folder, ""))
            return
        if not _literal(dockerfile):
            self.refuse(
                f"{self.shown(origin)} names the Dockerfile of {service} through a variable ({dockerfile}); the "
                "builder cannot check it before the devcontainer CLI reads it. Write the path itself."
            )
            self.project.builds.append(Build(service, folder, ""))
            return
        path = os.path.normpath(os.path.join(folder, str(dockerfile)))
        self.confined(path, "the Dockerfile", origin)
        self.project.builds.append(Build(service, folder, path))


def _items(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def read(config_path: str, data: dict[str, Any], workspace: str | None = None) -> Project:
    """The compose files of a config and what they read. With `workspace`, every file compose would
    read on the builder's side is checked to be inside it (BuildFailed, step `config`, otherwise);
    without, whatever can be read is listed and the rest skipped."""
    files = layout.compose_files(config_path, data)
    walk = _Walk(workspace, workspace or os.path.dirname(config_path))
    if not files:
        return walk.project
    project_dir = os.path.dirname(files[0])
    for path in files:
        walk.file(path, project_dir, config_path)
    dotenv = os.path.join(project_dir, ".env")
    if os.path.isfile(dotenv) and walk.confined(dotenv, "the env file", config_path):
        walk.project.env_files.append(dotenv)
    walk.project.env_files = list(dict.fromkeys(walk.project.env_files))
    return walk.project
