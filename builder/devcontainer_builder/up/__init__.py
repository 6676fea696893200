"""The `up` pipeline: prepare the repository, resolve its config, bring the devcontainer up, recover."""
