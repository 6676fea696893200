"""The `up` pipeline: prepare the repository, resolve its config, bring the devcontainer up, recover."""

# How the supervisor tells the `up` child it starts which build this is and why: process plumbing,
# not settings (a user never sets them), so they are not in the options table.
BUILD_ID_VAR = "DEVCONTAINER_BUILDER_BUILD_ID"
TRIGGER_VAR = "DEVCONTAINER_BUILDER_TRIGGER"
# the trigger of a keep-alive build: start the stopped container again, rebuild nothing
KEEPALIVE = "keepalive"
