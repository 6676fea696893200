# A Coder workspace built from the repository's devcontainer.json by devcontainer-builder, on Kubernetes.
#
# One pod per workspace: a Docker engine as a native sidecar (the one privileged container), the builder
# as an init container (`up`: clone, build, start the devcontainer and Coder's `main` agent in it), and
# the supervisor as the main container (`serve`: status page, rebuilds, suggestions, keep-alive) beside
# the `terminal` container, where Coder's `builder` agent runs without the engine. /workspaces is a PVC
# that survives stop. README.md explains every choice.

terraform {
  required_version = ">= 1.6"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "2.20.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "3.2.1"
    }
  }
}

provider "coder" {}

provider "kubernetes" {
  # In-cluster (the Coder provisioner's service account) unless the admin points at a kubeconfig.
  config_path = var.use_kubeconfig ? "~/.kube/config" : null
}

# -- for the admin -------------------------------------------------------------------------------------

variable "use_kubeconfig" {
  type        = bool
  default     = false
  description = "Use ~/.kube/config of the Coder provisioner instead of its in-cluster service account."
}

variable "namespace" {
  type        = string
  default     = "coder"
  description = "Namespace the workspaces run in."
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "The namespace must be a DNS label: lower-case letters, digits and '-', at most 63."
  }
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

variable "cache_registry_auth" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Docker config JSON ({\"auths\": {...}}) with credentials for the cache repository; empty for none."
  validation {
    condition     = var.cache_registry_auth == "" || can(jsondecode(var.cache_registry_auth).auths)
    error_message = "cache_registry_auth is a Docker config JSON document with an \"auths\" object."
  }
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

variable "storage_class" {
  type        = string
  default     = ""
  description = "Storage class of the workspace's volumes; empty for the cluster's default."
}

variable "engine_storage" {
  type        = string
  default     = "volume"
  description = "Where the engine keeps images and containers: `volume` (a PVC: a restarted workspace finds its devcontainer and does not rebuild) or `ephemeral` (emptyDir: every start rebuilds, from the registry cache if there is one)."
  validation {
    condition     = contains(["volume", "ephemeral"], var.engine_storage)
    error_message = "engine_storage is volume or ephemeral."
  }
}

variable "engine_bridge" {
  type        = string
  default     = ""
  description = "The address of the engine's own bridge (dockerd --bip), where the devcontainer lives, e.g. 10.200.0.1/24; empty for Docker's default, 172.17.0.1/16. Set it when the workspace must reach something in 172.17.0.0/16 (Coder, a Git server)."
  validation {
    condition     = var.engine_bridge == "" || can(cidrhost(var.engine_bridge, 0))
    error_message = "engine_bridge is an address with its prefix length, such as 10.200.0.1/24, or empty."
  }
}

variable "engine_disk_size" {
  type        = number
  default     = 50
  description = "GiB for the engine's images and containers, when engine_storage is volume."
  validation {
    condition     = var.engine_disk_size >= 10 && var.engine_disk_size <= 2000
    error_message = "engine_disk_size is between 10 and 2000 GiB."
  }
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
  description = "CPU architecture of the cluster's nodes, for Coder's agent binary."
  validation {
    condition     = contains(["amd64", "arm64"], var.arch)
    error_message = "arch is amd64 or arm64."
  }
}

variable "owner_engine_access" {
  type        = bool
  default     = false
  description = "Give the workspace's owner the engine in the builder agent's terminal (and so anything an AI tool runs there): `docker run --privileged` on the privileged sidecar reaches the node, past the admin's policy, as in Coder's Docker-in-Docker templates. Off: that terminal has no engine (docs/security.md)."
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

data "coder_parameter" "cpu" {
  name         = "cpu"
  display_name = "CPU"
  description  = "Cores for the workspace."
  type         = "number"
  default      = "4"
  mutable      = true
  order        = 3
  validation {
    min = 1
    max = 32
  }
}

data "coder_parameter" "memory" {
  name         = "memory"
  display_name = "Memory (GiB)"
  description  = "Memory for the workspace."
  type         = "number"
  default      = "8"
  mutable      = true
  order        = 4
  validation {
    min = 2
    max = 128
  }
}

data "coder_parameter" "disk_size" {
  name         = "disk_size"
  display_name = "Home disk (GiB)"
  description  = "Size of /workspaces. Fixed once the workspace exists: shrinking a volume would replace it and lose its data."
  type         = "number"
  default      = "20"
  mutable      = false
  order        = 5
  validation {
    min = 5
    max = 1000
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
  # new on every workspace build: the agents' tokens are
  build_digest = nonsensitive(sha256(join(",", [coder_agent.main.token, coder_agent.builder.token])))
  # the host the repository URL names (https://[user@]host/..., ssh://[user@]host[:port]/..., user@host:path)
  repo_host = try(lower(regex("^(?:[a-z]+://)?(?:[^@/]*@)?([^/:]+)", data.coder_parameter.repository.value)[0]), "")
  # the git token only for the host it is for
  use_token   = var.external_auth_id != "" && (var.external_auth_host == "" || local.repo_host == lower(var.external_auth_host))
  name        = "coder-${data.coder_workspace.me.id}"
  repo_name   = trimsuffix(basename(data.coder_parameter.repository.value), ".git")
  socket_dir  = "/run/engine"
  socket_gid  = 2375 # dockerd --group: the builder and supervisor reach the engine as this group, not root
  builder_uid = 1000 # the image's `builder` user
  serve_port  = 7480
  labels = {
    "app.kubernetes.io/name"     = "coder-workspace"
    "app.kubernetes.io/instance" = local.name
    "app.kubernetes.io/part-of"  = "coder"
    "com.coder.resource"         = "true"
    "com.coder.workspace.id"     = data.coder_workspace.me.id
    "com.coder.workspace.name"   = data.coder_workspace.me.name
    "com.coder.user.id"          = data.coder_workspace_owner.me.id
    "com.coder.user.username"    = data.coder_workspace_owner.me.name
  }
  annotations = {
    "com.coder.user.email" = data.coder_workspace_owner.me.email
  }
  # Settings both builder containers read; every name is in the builder's options table
  # (devcontainer-builder options), except DOCKER_HOST and DOCKER_CONFIG, which the docker client reads.
  builder_env = merge(
    {
      DEVCONTAINER_REPOSITORY         = data.coder_parameter.repository.value
      DEVCONTAINER_WORKSPACE_FOLDER   = "/workspaces/${local.repo_name}"
      DEVCONTAINER_STATE_DIR          = "/workspaces/.devcontainer-builder"
      DEVCONTAINER_FALLBACK_IMAGE     = var.fallback_image
      DEVCONTAINER_BUILD_TIMEOUT      = tostring(var.build_timeout)
      DEVCONTAINER_ENGINE_TIMEOUT     = "300"
      DEVCONTAINER_WORKSPACE_UID      = tostring(local.builder_uid)
      DEVCONTAINER_WORKSPACE_GID      = tostring(local.builder_uid)
      DEVCONTAINER_ALLOWED_PRIVILEGES = var.allowed_privileges
      CODER_AGENT_URL                 = data.coder_workspace.me.access_url
      DOCKER_HOST                     = "unix://${local.socket_dir}/docker.sock"
    },
    data.coder_parameter.branch.value == "" ? {} : { DEVCONTAINER_BRANCH = data.coder_parameter.branch.value },
    var.cache_repository == "" ? {} : {
      DEVCONTAINER_CACHE_FROM = var.cache_repository
      DEVCONTAINER_CACHE_TO   = "type=registry,ref=${var.cache_repository},mode=max"
    },
    var.cache_registry_auth == "" ? {} : { DOCKER_CONFIG = "/home/builder/.docker" },
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
  # the status page's key: in the app's URL and, from the Secret, given to serve; the devcontainer never
  # holds the builder agent's token it comes from
  page_key = sha256("devcontainer-builder status page:${coder_agent.builder.token}")
  # from the Secret, never as literal values in the Deployment
  secret_env = merge(
    {
      CODER_AGENT_TOKEN            = "main-agent-token"
      CODER_INIT_SCRIPT            = "main-agent-init-script"
      DEVCONTAINER_SSH_PRIVATE_KEY = "ssh-private-key" # the user's Coder git SSH key, for ssh URLs
    },
    local.use_token ? { GH_TOKEN = "gh-token" } : {},
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
    # Coder's own devcontainer discovery must not offer to start this devcontainer a second time
    CODER_AGENT_DEVCONTAINERS_ENABLE = "false"
  }
  display_apps {
    vscode                 = true
    web_terminal           = true
    ssh_helper             = true
    port_forwarding_helper = true
  }
}

# Runs in the pod's `terminal` container, beside the supervisor: the status page and a terminal that work
# even when the devcontainer is being rebuilt, or when the build and the fallback both failed. Second in
# order: Coder lists `main` (the devcontainer) first, where the workspace's apps and AI tools belong.
resource "coder_agent" "builder" {
  arch               = var.arch
  os                 = "linux"
  dir                = "/workspaces"
  connection_timeout = var.build_timeout + 600 # serve starts it once the builder init container is done
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

# -- storage ---------------------------------------------------------------------------------------------

# No count: it survives a stop. Its size is an immutable parameter (shrinking replaces the claim).
resource "kubernetes_persistent_volume_claim_v1" "workspaces" {
  metadata {
    name        = "${local.name}-workspaces"
    namespace   = var.namespace
    labels      = merge(local.labels, { "app.kubernetes.io/component" = "workspaces" })
    annotations = local.annotations
  }
  wait_until_bound = false # WaitForFirstConsumer classes bind only once the pod exists
  lifecycle {
    # the storage class is the claim's for life: a new admin default must not replace the user's files
    ignore_changes = [spec[0].storage_class_name]
  }
  spec {
    access_modes       = ["ReadWriteOnce"]
    storage_class_name = var.storage_class == "" ? null : var.storage_class
    resources {
      requests = {
        storage = "${data.coder_parameter.disk_size.value}Gi"
      }
    }
  }
}

resource "kubernetes_persistent_volume_claim_v1" "engine" {
  count = var.engine_storage == "volume" ? 1 : 0
  metadata {
    name        = "${local.name}-engine"
    namespace   = var.namespace
    labels      = merge(local.labels, { "app.kubernetes.io/component" = "engine" })
    annotations = local.annotations
  }
  wait_until_bound = false
  lifecycle {
    # class and size apply to new workspaces: changing them must not replace a workspace's engine storage
    ignore_changes = [spec[0].storage_class_name, spec[0].resources]
  }
  spec {
    access_modes       = ["ReadWriteOnce"]
    storage_class_name = var.storage_class == "" ? null : var.storage_class
    resources {
      requests = {
        storage = "${var.engine_disk_size}Gi"
      }
    }
  }
}

# -- secrets and the engine's configuration ----------------------------------------------------------------

resource "kubernetes_secret_v1" "agent" {
  count = data.coder_workspace.me.start_count
  metadata {
    name      = "${local.name}-agent"
    namespace = var.namespace
    labels    = local.labels
  }
  data = merge(
    {
      "main-agent-token"          = coder_agent.main.token
      "main-agent-init-script"    = coder_agent.main.init_script
      "builder-agent-token"       = coder_agent.builder.token
      "builder-agent-init-script" = coder_agent.builder.init_script
      "status-page-key"           = local.page_key
      "ssh-private-key"           = base64encode(data.coder_workspace_owner.me.ssh_private_key)
    },
    local.use_token ? { "gh-token" = data.coder_external_auth.git[0].access_token } : {},
  )
}

resource "kubernetes_secret_v1" "registry" {
  count = var.cache_registry_auth == "" ? 0 : data.coder_workspace.me.start_count
  metadata {
    name      = "${local.name}-registry"
    namespace = var.namespace
    labels    = local.labels
  }
  type = "kubernetes.io/dockerconfigjson"
  data = {
    ".dockerconfigjson" = var.cache_registry_auth
  }
}

resource "kubernetes_config_map_v1" "engine" {
  count = data.coder_workspace.me.start_count
  metadata {
    name      = "${local.name}-engine"
    namespace = var.namespace
    labels    = local.labels
  }
  data = merge(
    {
      # the containerd image store: BuildKit's registry cache export (--cache-to type=registry) needs it
      "daemon.json" = jsonencode(merge(
        { features = { "containerd-snapshotter" = true } },
        var.engine_bridge == "" ? {} : { bip = var.engine_bridge },
      ))
    },
    var.extra_ca_bundle == "" ? {} : { "extra-ca.crt" = var.extra_ca_bundle },
  )
}

# -- the pod ---------------------------------------------------------------------------------------------

resource "kubernetes_deployment_v1" "workspace" {
  #checkov:skip=CKV_K8S_43:the admin pins the builder image by version or digest (variable validation); the engine image is the admin's choice
  #checkov:skip=CKV_K8S_15:images are pinned, so IfNotPresent (the default) pulls exactly what is pinned, once per node
  count            = data.coder_workspace.me.start_count
  wait_for_rollout = false # the builder keeps the pod un-ready while it builds: Coder shows its log
  depends_on       = [kubernetes_persistent_volume_claim_v1.workspaces]
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

  metadata {
    name        = local.name
    namespace   = var.namespace
    labels      = local.labels
    annotations = local.annotations
  }

  spec {
    replicas = 1
    strategy {
      type = "Recreate" # a ReadWriteOnce volume cannot roll
    }
    selector {
      match_labels = {
        "app.kubernetes.io/instance" = local.name
      }
    }

    template {
      metadata {
        labels = local.labels
        # the agents' tokens are new on every build and reach the containers through the Secret, which a
        # running pod does not reread: a changed digest here makes a new pod that reads the new ones
        annotations = merge(local.annotations, {
          "devcontainer-builder/agent-tokens" = local.build_digest
        })
      }

      spec {
        termination_grace_period_seconds = 30
        automount_service_account_token  = false # nothing in the pod talks to the Kubernetes API
        enable_service_links             = false # no other Service's address in the containers' environment
        security_context {
          fs_group               = tostring(local.builder_uid) # /workspaces belongs to the builder's user
          fs_group_change_policy = "OnRootMismatch"
          supplemental_groups    = [local.socket_gid]
        }

        # The Docker engine, a native sidecar: it starts first, and the builder starts only once the
        # startup probe says the engine answers. The one privileged container.
        init_container {
          name           = "engine"
          image          = var.engine_image
          restart_policy = "Always"
          args           = ["dockerd", "--host=unix://${local.socket_dir}/docker.sock", "--group=${local.socket_gid}"]
          security_context {
            privileged = true
          }
          startup_probe {
            exec {
              command = ["docker", "--host=unix://${local.socket_dir}/docker.sock", "version"]
            }
            period_seconds    = 1
            timeout_seconds   = 5
            failure_threshold = 180
          }
          resources {
            requests = {
              cpu    = "250m"
              memory = "512Mi"
            }
            limits = {
              cpu    = data.coder_parameter.cpu.value
              memory = "${data.coder_parameter.memory.value}Gi"
            }
          }
          volume_mount {
            name       = "engine"
            mount_path = "/var/lib/docker"
          }
          volume_mount {
            name       = "socket"
            mount_path = local.socket_dir
          }
          volume_mount {
            name       = "workspaces"
            mount_path = "/workspaces"
          }
          volume_mount {
            name       = "engine-config"
            mount_path = "/etc/docker"
            read_only  = true
          }
          dynamic "volume_mount" {
            # dockerd (Go) trusts every certificate file in /etc/ssl/certs beside the system bundle
            for_each = var.extra_ca_bundle == "" ? [] : [1]
            content {
              name       = "engine-config"
              mount_path = "/etc/ssl/certs/devcontainer-builder-extra-ca.crt"
              sub_path   = "extra-ca.crt"
              read_only  = true
            }
          }
        }

        # The builder: clone, build, start the devcontainer and the main agent in it; exits 0 once the
        # workspace runs (healthy, or degraded on the fallback image).
        init_container {
          name  = "builder"
          image = var.builder_image
          dynamic "env" {
            for_each = merge(local.builder_env, {
              DEVCONTAINER_BUILDER_MODE = "up"
              DEVCONTAINER_REBUILD      = tostring(data.coder_parameter.rebuild.value)
              DEVCONTAINER_REBUILD_FULL = tostring(data.coder_parameter.rebuild_full.value)
              # one per workspace build: a pod recreated later in this build does not rebuild again
              DEVCONTAINER_REBUILD_ID = local.build_digest
            })
            content {
              name  = env.key
              value = env.value
            }
          }
          dynamic "env" {
            for_each = local.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = kubernetes_secret_v1.agent[0].metadata[0].name
                  key  = env.value
                }
              }
            }
          }
          security_context {
            run_as_user                = tostring(local.builder_uid)
            run_as_group               = tostring(local.builder_uid)
            run_as_non_root            = true
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
            seccomp_profile {
              type = "RuntimeDefault"
            }
          }
          resources {
            requests = {
              cpu    = "100m"
              memory = "256Mi"
            }
            limits = {
              cpu    = "2"
              memory = "1Gi"
            }
          }
          dynamic "volume_mount" {
            for_each = local.builder_mounts
            content {
              name       = volume_mount.value.name
              mount_path = volume_mount.value.path
              sub_path   = volume_mount.value.sub_path
              read_only  = volume_mount.value.read_only
            }
          }
        }

        # The supervisor: status page, rebuilds, suggestions, keep-alive.
        container {
          name  = "supervisor"
          image = var.builder_image
          dynamic "env" {
            for_each = merge(local.builder_env, { DEVCONTAINER_BUILDER_MODE = "serve" })
            content {
              name  = env.key
              value = env.value
            }
          }
          dynamic "env" {
            # the status app's key: serve accepts the page's changes only under it
            for_each = merge(local.secret_env, { DEVCONTAINER_SERVE_PAGE_KEY = "status-page-key" })
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = kubernetes_secret_v1.agent[0].metadata[0].name
                  key  = env.value
                }
              }
            }
          }
          security_context {
            run_as_user                = tostring(local.builder_uid)
            run_as_group               = tostring(local.builder_uid)
            run_as_non_root            = true
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
            seccomp_profile {
              type = "RuntimeDefault"
            }
          }
          # serve answers on loopback: the probes ask from inside the container
          readiness_probe {
            exec {
              command = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:${local.serve_port}/healthz"]
            }
            period_seconds  = 5
            timeout_seconds = 3
          }
          liveness_probe {
            exec {
              command = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:${local.serve_port}/healthz"]
            }
            initial_delay_seconds = 10
            period_seconds        = 10
            timeout_seconds       = 5
            failure_threshold     = 6
          }
          resources {
            # its rebuilds and keep-alive restarts run here: the same room as the builder's first build
            requests = {
              cpu    = "50m"
              memory = "128Mi"
            }
            limits = {
              cpu    = "2"
              memory = "1Gi"
            }
          }
          dynamic "volume_mount" {
            for_each = local.builder_mounts
            content {
              name       = volume_mount.value.name
              mount_path = volume_mount.value.path
              sub_path   = volume_mount.value.sub_path
              read_only  = volume_mount.value.read_only
            }
          }
        }

        # Coder's `builder` agent: the status page's app and a terminal that work while the devcontainer
        # is rebuilt or down. A container of its own, without the engine's socket (owner_engine_access
        # gives it), and with the state dir read-only: what the owner - or an AI tool - runs here cannot
        # drive the privileged engine, nor change what the supervisor's builds read. Its restarts are
        # the kubelet's.
        container {
          name    = "terminal"
          image   = var.builder_image
          command = ["sh", "-c", "eval \"$CODER_INIT_SCRIPT\""]
          dynamic "env" {
            for_each = merge(
              { DEVCONTAINER_STATE_DIR = local.builder_env.DEVCONTAINER_STATE_DIR },
              var.owner_engine_access ? { DOCKER_HOST = local.builder_env.DOCKER_HOST } : {},
            )
            content {
              name  = env.key
              value = env.value
            }
          }
          dynamic "env" {
            for_each = { CODER_AGENT_TOKEN = "builder-agent-token", CODER_INIT_SCRIPT = "builder-agent-init-script" }
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = kubernetes_secret_v1.agent[0].metadata[0].name
                  key  = env.value
                }
              }
            }
          }
          security_context {
            run_as_user                = tostring(local.builder_uid)
            run_as_group               = tostring(local.builder_uid)
            run_as_non_root            = true
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
            seccomp_profile {
              type = "RuntimeDefault"
            }
          }
          resources {
            requests = {
              cpu    = "10m"
              memory = "64Mi"
            }
            limits = {
              cpu    = "1"
              memory = "512Mi"
            }
          }
          dynamic "volume_mount" {
            for_each = local.terminal_mounts
            content {
              name       = volume_mount.value.name
              mount_path = volume_mount.value.path
              sub_path   = volume_mount.value.sub_path
              read_only  = volume_mount.value.read_only
            }
          }
        }

        volume {
          name = "workspaces"
          persistent_volume_claim {
            claim_name = kubernetes_persistent_volume_claim_v1.workspaces.metadata[0].name
          }
        }
        dynamic "volume" {
          for_each = var.engine_storage == "volume" ? [1] : []
          content {
            name = "engine"
            persistent_volume_claim {
              claim_name = kubernetes_persistent_volume_claim_v1.engine[0].metadata[0].name
            }
          }
        }
        dynamic "volume" {
          for_each = var.engine_storage == "volume" ? [] : [1]
          content {
            name = "engine"
            empty_dir {
              size_limit = "${var.engine_disk_size}Gi"
            }
          }
        }
        volume {
          name = "socket"
          empty_dir {
            medium = "Memory"
          }
        }
        volume {
          name = "engine-config"
          config_map {
            name = kubernetes_config_map_v1.engine[0].metadata[0].name
          }
        }
        volume {
          name = "docker-config"
          empty_dir {}
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "2Gi"
          }
        }
        volume {
          name = "home"
          empty_dir {
            size_limit = "1Gi"
          }
        }
        volume {
          name = "terminal-tmp"
          empty_dir {
            size_limit = "2Gi"
          }
        }
        volume {
          name = "terminal-home"
          empty_dir {
            size_limit = "1Gi"
          }
        }
        dynamic "volume" {
          for_each = var.cache_registry_auth == "" ? [] : [1]
          content {
            name = "registry-auth"
            secret {
              secret_name = kubernetes_secret_v1.registry[0].metadata[0].name
            }
          }
        }
      }
    }
  }
}

locals {
  # /workspaces at the same path as in the engine (bind mounts resolve inside the engine); the socket;
  # /tmp and the home folder (the root filesystem is read-only: git and the devcontainer CLI write
  # there); a writable docker config folder (buildx writes into it), holding the registry credentials.
  builder_mounts = concat(
    [
      { name = "workspaces", path = "/workspaces", sub_path = null, read_only = false },
      { name = "socket", path = local.socket_dir, sub_path = null, read_only = false },
      { name = "tmp", path = "/tmp", sub_path = null, read_only = false },
      { name = "home", path = "/home/builder", sub_path = null, read_only = false },
      { name = "docker-config", path = "/home/builder/.docker", sub_path = null, read_only = false },
    ],
    var.cache_registry_auth == "" ? [] : [
      { name = "registry-auth", path = "/home/builder/.docker/config.json", sub_path = ".dockerconfigjson", read_only = true },
    ],
  )
}

locals {
  # The terminal's: the user's files; the state dir over them, read-only (the supervisor's builds trust
  # what is in it); a /tmp and a home of its own (the agent downloads itself into /tmp); the engine's
  # socket only when the admin gives the owner the engine.
  terminal_mounts = concat(
    [
      { name = "workspaces", path = "/workspaces", sub_path = null, read_only = false },
      { name = "workspaces", path = local.builder_env.DEVCONTAINER_STATE_DIR, sub_path = ".devcontainer-builder", read_only = true },
      { name = "terminal-tmp", path = "/tmp", sub_path = null, read_only = false },
      { name = "terminal-home", path = "/home/builder", sub_path = null, read_only = false },
    ],
    var.owner_engine_access ? [{ name = "socket", path = local.socket_dir, sub_path = null, read_only = false }] : [],
  )
}

resource "coder_metadata" "workspace" {
  count       = data.coder_workspace.me.start_count
  resource_id = kubernetes_deployment_v1.workspace[0].id
  item {
    key   = "repository"
    value = data.coder_parameter.repository.value
  }
  item {
    key   = "branch"
    value = data.coder_parameter.branch.value == "" ? "(default)" : data.coder_parameter.branch.value
  }
  item {
    key   = "engine storage"
    value = var.engine_storage
  }
  item {
    key   = "resources"
    value = "${data.coder_parameter.cpu.value} CPU, ${data.coder_parameter.memory.value} GiB"
  }
}

resource "coder_metadata" "workspaces_volume" {
  resource_id = kubernetes_persistent_volume_claim_v1.workspaces.id
  item {
    key   = "size"
    value = "${data.coder_parameter.disk_size.value} GiB"
  }
}
