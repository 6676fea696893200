"""Which settings a template's environment, at the template's own defaults, gives a value other than the
options table's default (builder/devcontainer_builder/settings/options.py): the templates' tests compare
that set with their named list of deliberate differences."""

from __future__ import annotations

from collections.abc import Mapping

from devcontainer_builder.settings import options, types

BY_ENV = {option.env: option for option in options.OPTIONS}
# given per workspace by Coder or by the user's parameters, not an admin's default: nothing to compare
PER_WORKSPACE = frozenset(
    {"CODER_AGENT_URL", "CODER_INIT_SCRIPT", "DEVCONTAINER_REBUILD_ID", "DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT"}
)


def table_default(option: options.Option, repository_url: str) -> object:
    """The default the builder itself would use, derived ones included (the folders named after the
    repository, on a machine with /workspaces as every template has)."""
    if option.name == "workspace_folder":
        repository = types.RepositoryUrl().convert(repository_url, None, None)
        return options.default_workspace_folder(repository, {}, home_based=False)
    if option.name == "state_dir":
        return options.DEFAULT_STATE_DIR
    return option.default


def not_the_tables(env: Mapping[str, str], repository_url: str) -> dict[str, str]:
    """The settings in env (name -> raw value) whose value is not the table's default, by name. Secrets,
    required settings and per-workspace values are left out; an empty value is an unset one (as
    options.load reads it)."""
    differing = {}
    for name, raw in env.items():
        option = BY_ENV.get(name)
        if option is None or option.secret or option.required or name in PER_WORKSPACE or raw == "":
            continue
        if option.type.convert(raw, None, None) != table_default(option, repository_url):
            differing[name] = raw
    return differing
