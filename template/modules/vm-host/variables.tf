# -- from the VM template's coder_agent -------------------------------------------------------------------

variable "agent_token" {
  type        = string
  sensitive   = true
  description = "coder_agent.<name>.token of the agent that runs inside the devcontainer."
  validation {
    condition     = !strcontains(var.agent_token, "\u0000")
    error_message = "agent_token may not hold a NUL byte."
  }
}

variable "agent_init_script" {
  type        = string
  sensitive   = true
  description = "coder_agent.<name>.init_script: the builder runs it inside the devcontainer (or the fallback) as the remote user."
  validation {
    condition     = !strcontains(var.agent_init_script, "\u0000")
    error_message = "agent_init_script may not hold a NUL byte."
  }
}

variable "agent_url" {
  type        = string
  description = "Where the agent reaches Coder: data.coder_workspace.me.access_url."
  validation {
    condition     = can(regex("^https?://", var.agent_url))
    error_message = "agent_url is Coder's access URL, http:// or https://."
  }
  validation {
    condition     = !strcontains(var.agent_url, "\u0000")
    error_message = "agent_url may not hold a NUL byte."
  }
}

variable "builder_agent_token" {
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true
  description = "Optional: the token of a second agent (the `builder` agent) that `serve` runs beside the devcontainer, so the status page and a terminal work while it is down; empty for none."
  validation {
    condition     = !strcontains(var.builder_agent_token, "\u0000")
    error_message = "builder_agent_token may not hold a NUL byte."
  }
}

variable "builder_agent_init_script" {
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true
  description = "Optional: that agent's init_script; set with builder_agent_token."
  validation {
    condition     = !strcontains(var.builder_agent_init_script, "\u0000")
    error_message = "builder_agent_init_script may not hold a NUL byte."
  }
}

# -- the workspace ------------------------------------------------------------------------------------------

variable "repository" {
  type        = string
  description = "The repository to build: an https, ssh or scp-style Git URL (a user parameter in the calling template)."
  validation {
    condition     = length(trimspace(var.repository)) > 0 && !startswith(var.repository, "-")
    error_message = "repository is a Git URL such as https://github.com/acme/app.git."
  }
  validation {
    condition     = !strcontains(var.repository, "\u0000")
    error_message = "repository may not hold a NUL byte."
  }
}

variable "branch" {
  type        = string
  default     = ""
  nullable    = false
  description = "The branch; empty for the repository's default."
  validation {
    condition     = !strcontains(var.branch, "\u0000")
    error_message = "branch may not hold a NUL byte."
  }
}

variable "user" {
  type        = string
  default     = "coder"
  nullable    = false
  description = "The VM's workspace user: the builder, rootless Podman and the workspace's files are theirs. Created at first boot when missing."
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.user)) && var.user != "root"
    error_message = "user is an ordinary Linux user name (not root): lower-case letters, digits, _ and -."
  }
}

variable "fallback_image" {
  type        = string
  default     = "docker.io/codercom/enterprise-base:ubuntu"
  nullable    = false
  description = "The image a failed build falls back to. Fully qualified: Podman does not guess a registry for a short name."
  validation {
    condition     = can(regex("^[a-z0-9][^\\s]*$", var.fallback_image))
    error_message = "fallback_image is an image reference such as docker.io/codercom/enterprise-base:ubuntu."
  }
  validation {
    condition     = !strcontains(var.fallback_image, "\u0000")
    error_message = "fallback_image may not hold a NUL byte."
  }
}

variable "network" {
  type        = string
  default     = "host"
  nullable    = false
  description = "The devcontainer's network (DEVCONTAINER_NETWORK): host makes its ports the VM's; empty for Podman's default."
  validation {
    condition     = can(regex("^([A-Za-z0-9][A-Za-z0-9_.-]*)?$", var.network))
    error_message = "network is a network mode (host, bridge, none, pasta, slirp4netns) or a network's name."
  }
}

variable "persist" {
  type        = list(string)
  default     = ["~/.vscode-server", "~/.local/share/code-server"]
  nullable    = false
  description = "Folders in the devcontainer kept in named volumes across rebuilds (DEVCONTAINER_PERSIST)."
  validation {
    condition     = alltrue([for p in var.persist : can(regex("^(/|~/)[^\\s,=]+$", p)) && !strcontains(p, "..")])
    error_message = "persist holds folders in the container, /absolute or ~/relative, without spaces, commas, = or ..."
  }
}

variable "env" {
  type        = map(string)
  default     = {}
  nullable    = false
  description = "More builder settings (DEVCONTAINER_* variables: `devcontainer-builder options` lists them), written into the env file."
  validation {
    condition     = alltrue([for k in keys(var.env) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "env's keys are environment variable names (upper case, digits, _)."
  }
  validation {
    condition     = alltrue([for v in values(var.env) : !strcontains(v, "\u0000")])
    error_message = "env's values may not hold a NUL byte."
  }
}

variable "secret_env" {
  type        = map(string)
  default     = {}
  nullable    = false
  sensitive   = true
  description = "Secret settings (GH_TOKEN, DEVCONTAINER_SSH_PRIVATE_KEY, ...), written into the root-only env file beside the rest."
  validation {
    condition     = alltrue([for k in keys(var.secret_env) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "secret_env's keys are environment variable names (upper case, digits, _)."
  }
  validation {
    condition     = alltrue([for v in values(var.secret_env) : !strcontains(v, "\u0000")])
    error_message = "secret_env's values may not hold a NUL byte."
  }
}

# -- what the VM installs ------------------------------------------------------------------------------------

variable "builder_package" {
  type        = string
  description = "What pip installs the builder from: a wheel's URL, a path on the VM, or a requirement such as devcontainer-builder==0.1.0 from your package index."
  validation {
    condition     = length(trimspace(var.builder_package)) > 0 && !startswith(var.builder_package, "-")
    error_message = "builder_package is a pip requirement, a wheel URL or a path; it cannot start with -."
  }
  validation {
    condition     = !strcontains(var.builder_package, "\u0000")
    error_message = "builder_package may not hold a NUL byte."
  }
}

variable "devcontainer_cli_url" {
  type        = string
  default     = "https://registry.npmjs.org/@devcontainers/cli/-/cli-0.89.0.tgz"
  nullable    = false
  description = "The devcontainer CLI's npm tarball (it has no dependencies: the VM needs Node.js, not npm)."
  validation {
    condition     = can(regex("^(https|http|file)://", var.devcontainer_cli_url))
    error_message = "devcontainer_cli_url is an https://, http:// or file:// URL."
  }
}

variable "devcontainer_cli_sha512" {
  type        = string
  default     = "2f36a8386290fd9aa5e8fb226788552185596a0cd6903eb9686ff5a2ee7f2a5cb96353ed8cb835ca7eeabbe2d90b3568025e83659fe96f3f2a38ee112cd96a32"
  nullable    = false
  description = "The tarball's SHA-512 (hex), checked before it is unpacked: the npm registry's integrity of @devcontainers/cli 0.89.0."
  validation {
    condition     = can(regex("^[0-9a-f]{128}$", var.devcontainer_cli_sha512))
    error_message = "devcontainer_cli_sha512 is 128 hex digits."
  }
}

variable "service_name" {
  type        = string
  default     = "devcontainer-builder"
  nullable    = false
  description = "The systemd unit's name (without .service)."
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", var.service_name))
    error_message = "service_name is a plain unit name: letters, digits, _, . and -."
  }
}
