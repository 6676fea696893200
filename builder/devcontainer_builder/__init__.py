"""devcontainer-builder: a repository's devcontainer.json, built with the devcontainer CLI, as a workspace."""

__version__ = "0.1.0"
