"""The editor in the workspace: code-server inside the devcontainer (and the fallback), with the merged
config's customizations.vscode extensions and settings.

source.py fetches and verifies the admin's code-server tarball; customizations.py reads what the config,
its features and its image ask for; gallery.py and vsix.py say where extensions come from; container.py
is what runs inside the container; start.py puts it together after Coder's agent has been started.
"""
