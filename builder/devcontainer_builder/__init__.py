"""devcontainer-builder: a repository's devcontainer.json, built with the devcontainer CLI, as a workspace.

The version lives in builder/version.txt (the package metadata and the image's label read it there).
"""
