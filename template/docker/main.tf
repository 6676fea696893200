# A Coder workspace built from the repository's devcontainer.json by devcontainer-builder, on one Docker
# host.
#
# Per workspace: a Docker engine container of its own (privileged, or a sysbox runtime), and the builder
# container, which runs `up` (clone, build, start the devcontainer and Coder's `main` agent in it) and
# then `serve` (status page, rebuilds, suggestions, keep-alive), and the terminal container, where Coder's
# `builder` agent runs without the engine. The host's own socket is not used: the devcontainer's bind
# mounts would resolve on the host. README.md explains more.

terraform {
  required_version = ">= 1.6"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "2.20.0"
    }
    docker = {
      source  = "kreuzwerker/docker"
      version = "4.6.0"
    }
  }
}

provider "coder" {}

provider "docker" {
  host = var.docker_host
}

# -- for the admin -------------------------------------------------------------------------------------

variable "docker_host" {
  type        = string
  default     = "unix:///var/run/docker.sock"
  description = "The Docker host the workspaces run on, as the Coder provisioner reaches it."
}

variable "builder_image" {
  type        = string
  default     = "ghcr.io/devcontainer-builder/devcontainer-builder:0.1.0"
  description = "The devcontainer-builder image, pinned by version or digest (never a moving tag)."
  validation {
    condition     = can(regex("(:[0-9][^:/@]*|@sha256:[0-9a-f]{64})$", var.builder_image))
    error_message = "Pin the builder image by a version tag (name:1.2.3) or a digest (name@sha256:...)."
  }
}

variable "engine_image" {
  type        = string
  default     = "docker.io/library/docker:28.2.2-dind"
  description = "The Docker engine image of each workspace's engine (Docker >= 24, for the containerd image store), pinned by version or digest."
  validation {
    condition     = can(regex("(:[0-9][^:/@]*|@sha256:[0-9a-f]{64})$", var.engine_image))
    error_message = "Pin the engine image by a version tag (docker:28.2.2-dind) or a digest."
  }
}

variable "engine_dns" {
  type        = list(string)
  default     = []
  description = "DNS servers for the engine's containers (the devcontainer, build steps). On the workspace's own network the engine's resolver is Docker's 127.0.0.11, which a nested engine cannot pass on: without servers here it falls back to public ones (8.8.8.8), which cannot resolve internal names."
}

variable "extra_ca_bundle" {
  type        = string
  default     = ""
  description = "Extra CA certificates in PEM (a proxy that intercepts TLS, an internal Git server or registry), trusted by the builder and the engine beside the system's; empty for none."
  validation {
    condition     = var.extra_ca_bundle == "" || strcontains(var.extra_ca_bundle, "-----BEGIN CERTIFICATE-----")
    error_message = "extra_ca_bundle is PEM text: one or more -----BEGIN CERTIFICATE----- blocks."
  }
}

variable "engine_runtime" {
  type        = string
  default     = ""
  description = "An OCI runtime for the engine container, e.g. sysbox-runc, which runs it without privileges; empty for the default runtime, with a privileged engine container."
}

variable "engine_bridge" {
  type        = string
  default     = "10.200.0.1/24"
  description = "The address of the engine's own bridge (dockerd --bip), where the devcontainer lives. It must not overlap a network the workspace reaches: Docker's own default, 172.17.0.0/16, is the host's bridge, where Coder and git often are."
  validation {
    condition     = can(cidrhost(var.engine_bridge, 0))
    error_message = "engine_bridge is an address with its prefix length, such as 10.200.0.1/24."
  }
}

variable "fallback_image" {
  type        = string
  default     = "codercom/enterprise-base:ubuntu"
  description = "The image the workspace runs when the repository's devcontainer cannot be built."
}

variable "cache_repository" {
  type        = string
  default     = ""
  description = "A registry repository for the build's layer cache (registry.example.com/team/cache); empty for none."
}

variable "external_auth_host" {
  type        = string
  default     = "github.com"
  description = "The only host the external auth token is given to: a repository elsewhere (a lookalike host included) is cloned without it. Empty gives it to any host."
}

variable "external_auth_id" {
  type        = string
  default     = ""
  description = "The id of a Coder external auth provider (e.g. github) whose token clones private repositories; empty for none."
}

variable "allowed_privileges" {
  type        = string
  default     = ""
  description = "What a repository's devcontainer.json may ask for beyond the default (DEVCONTAINER_ALLOWED_PRIVILEGES), e.g. \"initialize-command\"."
}

variable "build_timeout" {
  type        = number
  default     = 1800
  description = "Seconds one devcontainer build may take (DEVCONTAINER_BUILD_TIMEOUT); the main agent waits that long plus 10 minutes."
  validation {
    condition     = var.build_timeout >= 60 && var.build_timeout <= 86400
    error_message = "build_timeout is between 60 and 86400 seconds."
  }
}

variable "arch" {
  type        = string
  default     = "amd64"
  description = "CPU architecture of the Docker host, for Coder's agent binary."
  validation {
    condition     = contains(["amd64", "arm64"], var.arch)
    error_message = "arch is amd64 or arm64."
  }
}

variable "owner_engine_access" {
  type        = bool
  default     = false
  description = "Give the workspace's owner the engine in the builder agent's terminal (and so anything an AI tool runs there): `docker run --privileged` on the privileged engine container reaches the host, past the admin's policy, as in Coder's Docker-in-Docker templates. Off: that terminal has no engine (docs/security.md)."
}

# The editor in the devcontainer (docs/ide.md): code-server from a pinned, verified tarball
variable "ide" {
  type        = string
  default     = "none"
  description = "The editor started inside the devcontainer: code-server (a coder_app on the main agent) or none (DEVCONTAINER_IDE)."
  validation {
    condition     = contains(["code-server", "none"], var.ide)
    error_message = "ide is code-server or none."
  }
}

variable "ide_source" {
  type        = string
  default     = ""
  description = "Where the builder takes code-server from: the release or the admin's mirror (an http(s) URL to a .tar.gz); empty for the pinned release (DEVCONTAINER_IDE_SOURCE)."
}

variable "ide_sha256" {
  type        = string
  default     = ""
  description = "The SHA-256 of that tarball; required with ide = code-server (DEVCONTAINER_IDE_SHA256)."
  validation {
    condition     = can(regex("^([0-9a-f]{64})?$", var.ide_sha256))
    error_message = "ide_sha256 is 64 lower-case hexadecimal digits."
  }
}

variable "extensions_gallery" {
  type        = string
  default     = ""
  description = "An Open VSX-compatible gallery's serviceUrl for the config's extensions, or none; empty for Open VSX (DEVCONTAINER_EXTENSIONS_GALLERY)."
}

# -- for the user ----------------------------------------------------------------------------------------

data "coder_parameter" "repository" {
  name         = "repository"
  display_name = "Repository"
  description  = "Git URL of the repository whose devcontainer.json defines the workspace (https or ssh)."
  type         = "string"
  mutable      = true
  order        = 1
  validation {
    regex = "^(https?://([^\\s@/:]+@)?[^\\s@/]+/\\S+|ssh://[^\\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\\s-][^\\s]*)$"
    error = "Give an https:// (or http://), ssh:// or user@host:path Git URL."
  }
}

data "coder_parameter" "branch" {
  name         = "branch"
  display_name = "Branch"
  description  = "Branch to check out; empty for the repository's default branch."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 2
  validation {
    regex = "^([A-Za-z0-9_][A-Za-z0-9._/-]{0,199})?$"
    error = "A branch name: letters, digits, '.', '_', '/', '-', not starting with '-' or '.'."
  }
}

data "coder_parameter" "rebuild" {
  name         = "rebuild"
  display_name = "Rebuild devcontainer"
  description  = "Rebuild the devcontainer on this start, even if its configuration did not change."
  type         = "bool"
  default      = "false"
  mutable      = true
  ephemeral    = true
  order        = 10
}

data "coder_parameter" "rebuild_full" {
  name         = "rebuild_full"
  display_name = "Rebuild without cache"
  description  = "Rebuild on this start without the layer cache (every image layer built again)."
  type         = "bool"
  default      = "false"
  mutable      = true
  ephemeral    = true
  order        = 11
}

data "coder_parameter" "dotfiles_repository" {
  name         = "dotfiles_repository"
  display_name = "Dotfiles repository"
  description  = "Your dotfiles: a Git URL (or owner/repo on GitHub) installed in the devcontainer after its setup; empty for none."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 20
  validation {
    regex = "^([A-Za-z0-9][A-Za-z0-9._~:/@%+=,-]*)?$"
    error = "A Git URL or owner/repo: letters, digits and . _ ~ : / @ % + = , - only (percent-encode anything else)."
  }
}

data "coder_parameter" "dotfiles_install_command" {
  name         = "dotfiles_install_command"
  display_name = "Dotfiles install script"
  description  = "The script in your dotfiles repository to run; empty for install.sh, setup.sh, bootstrap.sh or the like."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 21
  validation {
    regex = "^([A-Za-z0-9_.][A-Za-z0-9_./-]*)?$"
    error = "A path in the dotfiles repository, such as install.sh."
  }
}

data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_external_auth" "git" {
  count = var.external_auth_id == "" ? 0 : 1
  id    = var.external_auth_id
}

# -- names, labels and the builder's settings -----------------------------------------------------------

locals {
  # the host the repository URL names (https://[user@]host/..., ssh://[user@]host[:port]/..., user@host:path)
  repo_host = try(lower(regex("^(?:[a-z]+://)?(?:[^@/]*@)?([^/:]+)", data.coder_parameter.repository.value)[0]), "")
  # the git token only for the host it is for
  use_token   = var.external_auth_id != "" && (var.external_auth_host == "" || local.repo_host == lower(var.external_auth_host))
  name        = "coder-${data.coder_workspace.me.id}"
  repo_name   = trimsuffix(basename(data.coder_parameter.repository.value), ".git")
  socket_dir  = "/run/engine"
  socket_gid  = 2375 # dockerd --group: the builder reaches the engine as this group, not root
  builder_uid = 1000 # the image's `builder` user
  serve_port  = 7480
  labels = {
    "coder.owner"          = data.coder_workspace_owner.me.name
    "coder.owner_id"       = data.coder_workspace_owner.me.id
    "coder.workspace_id"   = data.coder_workspace.me.id
    "coder.workspace_name" = data.coder_workspace.me.name
  }
  # Coder on the same host is reachable from the containers through the host's gateway
  agent_url = replace(data.coder_workspace.me.access_url, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")
  # every name is in the builder's options table (devcontainer-builder options), except DOCKER_HOST,
  # which the docker client reads. Secrets are set here too: a Docker container has no Secret object;
  # the builder's entrypoint moves them off its environment before anything else runs.
  builder_env = merge(
    {
      DEVCONTAINER_BUILDER_MODE       = "up-serve"
      DEVCONTAINER_REPOSITORY         = data.coder_parameter.repository.value
      DEVCONTAINER_WORKSPACE_FOLDER   = "/workspaces/${local.repo_name}"
      DEVCONTAINER_STATE_DIR          = "/workspaces/.devcontainer-builder"
      DEVCONTAINER_FALLBACK_IMAGE     = var.fallback_image
      DEVCONTAINER_BUILD_TIMEOUT      = tostring(var.build_timeout)
      DEVCONTAINER_ENGINE_TIMEOUT     = "300"
      DEVCONTAINER_WORKSPACE_UID      = tostring(local.builder_uid)
      DEVCONTAINER_WORKSPACE_GID      = tostring(local.builder_uid)
      DEVCONTAINER_ALLOWED_PRIVILEGES = var.allowed_privileges
      DEVCONTAINER_REBUILD            = tostring(data.coder_parameter.rebuild.value)
      DEVCONTAINER_REBUILD_FULL       = tostring(data.coder_parameter.rebuild_full.value)
      # one per workspace build (the agents' tokens are new on each): a restart of this container later in
      # the build - a host reboot - does not rebuild again
      DEVCONTAINER_REBUILD_ID = nonsensitive(sha256(coder_agent.main.token))
      CODER_AGENT_URL         = local.agent_url
      CODER_AGENT_TOKEN       = coder_agent.main.token
      CODER_INIT_SCRIPT       = replace(coder_agent.main.init_script, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")
      DOCKER_HOST             = "unix://${local.socket_dir}/docker.sock"
      # the user's Coder git SSH key, for ssh URLs
      DEVCONTAINER_SSH_PRIVATE_KEY = base64encode(data.coder_workspace_owner.me.ssh_private_key)
      # the key in the status app's URL: serve needs it to accept the page's changes
      DEVCONTAINER_SERVE_PAGE_KEY = local.page_key
    },
    data.coder_parameter.branch.value == "" ? {} : { DEVCONTAINER_BRANCH = data.coder_parameter.branch.value },
    var.cache_repository == "" ? {} : {
      DEVCONTAINER_CACHE_FROM = var.cache_repository
      DEVCONTAINER_CACHE_TO   = "type=registry,ref=${var.cache_repository},mode=max"
    },
    local.use_token ? { GH_TOKEN = data.coder_external_auth.git[0].access_token } : {},
    var.extra_ca_bundle == "" ? {} : { DEVCONTAINER_CA_BUNDLE = var.extra_ca_bundle },
    local.ide_env,
  )
  # the editor and the user's dotfiles (docs/ide.md)
  ide_env = merge(
    var.ide == "none" ? {} : { DEVCONTAINER_IDE = var.ide, DEVCONTAINER_IDE_SHA256 = var.ide_sha256 },
    var.ide == "none" || var.ide_source == "" ? {} : { DEVCONTAINER_IDE_SOURCE = var.ide_source },
    var.ide == "none" || var.extensions_gallery == "" ? {} : { DEVCONTAINER_EXTENSIONS_GALLERY = var.extensions_gallery },
    data.coder_parameter.dotfiles_repository.value == "" ? {} : {
      DEVCONTAINER_DOTFILES_REPOSITORY = data.coder_parameter.dotfiles_repository.value
    },
    data.coder_parameter.dotfiles_repository.value == "" || data.coder_parameter.dotfiles_install_command.value == "" ? {} : {
      DEVCONTAINER_DOTFILES_INSTALL_COMMAND = data.coder_parameter.dotfiles_install_command.value
    },
  )
}

locals {
  # the status page's key: in the app's URL and given to serve; the devcontainer never holds the builder
  # agent's token it comes from
  page_key = sha256("devcontainer-builder status page:${coder_agent.builder.token}")
  # the terminal's: its agent's token and init script, where `status` finds the state, and the engine
  # only when the admin gives it to the owner
  terminal_env = merge(
    {
      CODER_AGENT_TOKEN      = coder_agent.builder.token
      CODER_INIT_SCRIPT      = replace(coder_agent.builder.init_script, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")
      DEVCONTAINER_STATE_DIR = local.builder_env.DEVCONTAINER_STATE_DIR
    },
    var.owner_engine_access ? { DOCKER_HOST = local.builder_env.DOCKER_HOST } : {},
  )
}

# -- the agents ------------------------------------------------------------------------------------------

# Runs inside the devcontainer: the builder starts it with its init script once the container is up.
resource "coder_agent" "main" {
  arch               = var.arch
  os                 = "linux"
  dir                = "/workspaces/${local.repo_name}"
  connection_timeout = var.build_timeout + 600
  order              = 1
  env = {
    CODER_AGENT_DEVCONTAINERS_ENABLE = "false"
  }
  display_apps {
    vscode                 = true
    web_terminal           = true
    ssh_helper             = true
    port_forwarding_helper = true
  }
}

# Runs in the `terminal` container, on the builder container's network: the status page and a terminal
# that work while the devcontainer is rebuilt or down. Second in order: Coder lists `main` (the
# devcontainer) first, where the workspace's apps and AI tools belong.
resource "coder_agent" "builder" {
  arch               = var.arch
  os                 = "linux"
  dir                = "/workspaces"
  connection_timeout = var.build_timeout + 600 # serve starts it once `up` is done
  order              = 2
  env = {
    CODER_AGENT_DEVCONTAINERS_ENABLE = "false"
  }
  metadata {
    key          = "devcontainer"
    display_name = "Devcontainer"
    script       = "devcontainer-builder status --short --state-dir /workspaces/.devcontainer-builder"
    interval     = 5
    timeout      = 2
    order        = 1
  }
  display_apps {
    vscode                 = false
    vscode_insiders        = false
    web_terminal           = true
    ssh_helper             = false
    port_forwarding_helper = false
  }
}

# The URL holds the page's key (`serve` derives the same from the builder agent's token, which the
# devcontainer never holds): the page's buttons need it. 127.0.0.1, where `serve` listens (localhost may
# resolve to ::1 first, an address `serve` does not hold).
resource "coder_app" "status" {
  agent_id     = coder_agent.builder.id
  slug         = "devcontainer"
  display_name = "Devcontainer status"
  icon         = "/icon/docker.png"
  url          = "http://127.0.0.1:${local.serve_port}/k/${local.page_key}/"
  share        = "owner"
  subdomain    = false
  order        = 1
  healthcheck {
    url       = "http://127.0.0.1:${local.serve_port}/healthz"
    interval  = 5
    threshold = 6
  }
}

# code-server, started by the builder inside the devcontainer on its loopback (docs/ide.md)
resource "coder_app" "code_server" {
  count        = var.ide == "code-server" ? 1 : 0
  agent_id     = coder_agent.main.id
  slug         = "code-server"
  display_name = "code-server"
  icon         = "/icon/code.svg"
  url          = "http://localhost:13337/?folder=/workspaces/${local.repo_name}"
  share        = "owner"
  subdomain    = false
  order        = 2
  healthcheck {
    url       = "http://localhost:13337/healthz"
    interval  = 5
    threshold = 6
  }
}

# -- storage and network -----------------------------------------------------------------------------------

# No count: they survive a stop. ignore_changes: a volume is never replaced under the user's files.
resource "docker_volume" "workspaces" {
  name = "${local.name}-workspaces"
  lifecycle {
    ignore_changes = all
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

# the engine's images and containers: a restarted workspace finds its devcontainer and does not rebuild
resource "docker_volume" "engine" {
  name = "${local.name}-engine"
  lifecycle {
    ignore_changes = all
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

# the builder's state dir, a volume of its own so the terminal can have it read-only (the image makes the
# folder, owned by its user, for the volume to take)
resource "docker_volume" "state" {
  name = "${local.name}-state"
  lifecycle {
    ignore_changes = all
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "docker_volume" "socket" {
  name = "${local.name}-socket"
  lifecycle {
    ignore_changes = all
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "docker_network" "workspace" {
  count = data.coder_workspace.me.start_count
  name  = local.name
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

# -- the containers --------------------------------------------------------------------------------------

resource "docker_container" "engine" {
  count      = data.coder_workspace.me.start_count
  name       = "${local.name}-engine"
  image      = var.engine_image
  hostname   = "${data.coder_workspace.me.name}-engine"
  privileged = var.engine_runtime == "" # the one privileged container; sysbox needs no privilege
  # a stop is SIGTERM and a grace period, not a kill: dockerd shuts its containers and storage down cleanly
  destroy_grace_seconds = 30
  runtime               = var.engine_runtime == "" ? null : var.engine_runtime
  command               = ["dockerd", "--host=unix://${local.socket_dir}/docker.sock", "--group=${local.socket_gid}"]
  restart               = "unless-stopped"
  # The builder is created first: a new volume takes its content - and owner - from the first container
  # that mounts it, and /workspaces in the builder's image belongs to its user (the engine's does not
  # exist). The builder waits for the engine to answer (DEVCONTAINER_ENGINE_TIMEOUT).
  depends_on = [docker_container.builder]
  upload {
    # the containerd image store: BuildKit's registry cache export (--cache-to type=registry) needs it;
    # a bridge of its own: with Docker's default the devcontainer could not reach the host's 172.17.0.1
    file = "/etc/docker/daemon.json"
    content = jsonencode(merge(
      {
        features = { "containerd-snapshotter" = true }
        bip      = var.engine_bridge
      },
      length(var.engine_dns) == 0 ? {} : { dns = var.engine_dns },
    ))
  }
  dynamic "upload" {
    # dockerd (Go) trusts every certificate file in /etc/ssl/certs beside the system bundle
    for_each = var.extra_ca_bundle == "" ? [] : [1]
    content {
      file    = "/etc/ssl/certs/devcontainer-builder-extra-ca.crt"
      content = var.extra_ca_bundle
    }
  }
  healthcheck {
    test     = ["CMD", "docker", "--host=unix://${local.socket_dir}/docker.sock", "version"]
    interval = "2s"
    timeout  = "5s"
    retries  = 60
  }
  networks_advanced {
    name = docker_network.workspace[0].name
  }
  host {
    host = "host.docker.internal"
    ip   = "host-gateway"
  }
  volumes {
    container_path = "/var/lib/docker"
    volume_name    = docker_volume.engine.name
  }
  volumes {
    container_path = local.socket_dir
    volume_name    = docker_volume.socket.name
  }
  volumes {
    container_path = "/workspaces" # the same path as in the builder: bind mounts resolve in the engine
    volume_name    = docker_volume.workspaces.name
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "docker_container" "builder" {
  lifecycle {
    precondition {
      condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$", local.repo_name)) && local.repo_name != ".git"
      error_message = "The repository URL must end in a repository name (letters, digits, '.', '_', '-'): it names the workspace's folder."
    }
    precondition {
      condition     = var.ide == "none" || var.ide_sha256 != ""
      error_message = "ide = code-server needs ide_sha256: the builder runs no editor it cannot verify."
    }
  }
  count     = data.coder_workspace.me.start_count
  name      = "${local.name}-builder"
  image     = var.builder_image
  hostname  = data.coder_workspace.me.name
  env       = [for key, value in local.builder_env : "${key}=${value}"]
  group_add = [tostring(local.socket_gid)]
  read_only = true
  tmpfs = {
    # exec: Coder's agent init script runs the agent binary it downloads into a temporary folder
    "/tmp"          = "exec,uid=${local.builder_uid},gid=${local.builder_uid}"
    "/home/builder" = "uid=${local.builder_uid},gid=${local.builder_uid}"
  }
  security_opts = ["no-new-privileges"]
  capabilities {
    drop = ["ALL"]
  }
  restart               = "unless-stopped"
  stop_signal           = "SIGTERM"
  destroy_grace_seconds = 30 # serve ends within 5 s of SIGTERM; without this the provider kills it at once
  networks_advanced {
    name = docker_network.workspace[0].name
  }
  host {
    host = "host.docker.internal"
    ip   = "host-gateway"
  }
  volumes {
    container_path = local.socket_dir
    volume_name    = docker_volume.socket.name
  }
  volumes {
    container_path = "/workspaces"
    volume_name    = docker_volume.workspaces.name
  }
  volumes {
    container_path = local.builder_env.DEVCONTAINER_STATE_DIR
    volume_name    = docker_volume.state.name
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

# Coder's `builder` agent, in a container of its own: without the engine's socket (owner_engine_access
# gives it) and with the state dir read-only, what the owner - or an AI tool - runs in its terminal cannot
# drive the privileged engine, nor change what the builder's builds read. It shares the builder
# container's network, so the status page is on its localhost. Its restarts are the engine's.
resource "docker_container" "terminal" {
  count        = data.coder_workspace.me.start_count
  name         = "${local.name}-terminal"
  image        = var.builder_image
  network_mode = "container:${docker_container.builder[0].id}"
  entrypoint   = ["sh", "-c", "eval \"$CODER_INIT_SCRIPT\""]
  env          = [for key, value in local.terminal_env : "${key}=${value}"]
  group_add    = var.owner_engine_access ? [tostring(local.socket_gid)] : []
  read_only    = true
  tmpfs = {
    "/tmp"          = "exec,uid=${local.builder_uid},gid=${local.builder_uid}" # the agent downloads itself here
    "/home/builder" = "uid=${local.builder_uid},gid=${local.builder_uid}"
  }
  security_opts = ["no-new-privileges"]
  capabilities {
    drop = ["ALL"]
  }
  restart               = "unless-stopped"
  destroy_grace_seconds = 10
  volumes {
    container_path = "/workspaces"
    volume_name    = docker_volume.workspaces.name
  }
  volumes {
    container_path = local.builder_env.DEVCONTAINER_STATE_DIR
    volume_name    = docker_volume.state.name
    read_only      = true
  }
  dynamic "volumes" {
    for_each = var.owner_engine_access ? [1] : []
    content {
      container_path = local.socket_dir
      volume_name    = docker_volume.socket.name
    }
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "coder_metadata" "builder" {
  count       = data.coder_workspace.me.start_count
  resource_id = docker_container.builder[0].id
  item {
    key   = "repository"
    value = data.coder_parameter.repository.value
  }
  item {
    key   = "branch"
    value = data.coder_parameter.branch.value == "" ? "(default)" : data.coder_parameter.branch.value
  }
  item {
    key   = "engine"
    value = var.engine_runtime == "" ? "privileged container" : "runtime ${var.engine_runtime}"
  }
}
