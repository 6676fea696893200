# The builder on a VM: cloud-init user-data that installs rootless Podman and devcontainer-builder, writes
# the workspace's settings into a root-only env file, and starts the builder as a systemd service of the
# workspace's user (`up` at boot, then `serve`). No cloud resource here: a Coder VM template (AWS, GCP,
# Azure, Hetzner, Proxmox, ...) passes `user_data` to its instance. README.md shows it plugged in.

locals {
  env_file_path = "/etc/devcontainer-builder/workspace.env"
  install_dir   = "/opt/devcontainer-builder"
  # A port below 1024: on the VM's network (network = "host") a devcontainer could take any other before
  # `serve` starts, or while it restarts, and answer the status app in its place. The unit gives `serve`
  # CAP_NET_BIND_SERVICE; a rootless container has it in its own user namespace only.
  serve_address = "127.0.0.1:748"
  # the status page's key (serve derives the same from the builder agent's token, which the devcontainer
  # never holds): with it the page's buttons work; without a builder agent the page is read-only
  status_url = var.builder_agent_token == "" ? "http://${local.serve_address}/" : "http://${local.serve_address}/k/${sha256("devcontainer-builder status page:${var.builder_agent_token}")}/"

  settings = merge(
    {
      DEVCONTAINER_REPOSITORY     = var.repository
      DEVCONTAINER_FALLBACK_IMAGE = var.fallback_image
      DEVCONTAINER_DOCKER_PATH    = "podman"
      DEVCONTAINER_SERVE_ADDRESS  = local.serve_address
      CODER_AGENT_URL             = var.agent_url
    },
    var.branch == "" ? {} : { DEVCONTAINER_BRANCH = var.branch },
    var.network == "" ? {} : { DEVCONTAINER_NETWORK = var.network },
    length(var.persist) == 0 ? {} : { DEVCONTAINER_PERSIST = join(" ", var.persist) },
    var.env,
  )
  secrets = merge(
    {
      CODER_AGENT_TOKEN = var.agent_token
      CODER_INIT_SCRIPT = var.agent_init_script
    },
    var.builder_agent_token == "" ? {} : {
      DEVCONTAINER_SERVE_AGENT_TOKEN       = var.builder_agent_token
      DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT = var.builder_agent_init_script
    },
    var.secret_env,
  )

  # systemd's EnvironmentFile= syntax: KEY="value", where \ " $ and ` are escaped and a newline (the init
  # script's) is kept as it is - the same rules as a double-quoted string in sh
  env_lines = [
    for key, value in merge(local.settings, local.secrets) :
    format("%s=\"%s\"", key, replace(replace(replace(replace(value, "\\", "\\\\"), "\"", "\\\""), "$", "\\$"), "`", "\\`"))
  ]
  env_file = "${join("\n", local.env_lines)}\n"

  # every value goes into the script single-quoted for sh ('\'' for a quote inside)
  script_values = {
    user          = var.user
    package       = var.builder_package
    cli_url       = var.devcontainer_cli_url
    cli_sha512    = var.devcontainer_cli_sha512
    install_dir   = local.install_dir
    env_file_path = local.env_file_path
    service_name  = var.service_name
  }
  first_boot = templatefile("${path.module}/first-boot.sh.tftpl", {
    for key, value in local.script_values : key => "'${replace(value, "'", "'\\''")}'"
  })

  cloud_config = {
    package_update = true
    packages       = ["podman", "uidmap", "slirp4netns", "passt", "fuse-overlayfs", "git", "openssh-client", "curl", "ca-certificates", "nodejs", "python3-venv"]
    write_files = [
      {
        path        = local.env_file_path
        owner       = "root:root"
        permissions = "0600"
        content     = local.env_file
      },
      {
        path        = "/usr/local/sbin/devcontainer-builder-first-boot"
        owner       = "root:root"
        permissions = "0755"
        content     = local.first_boot
      },
    ]
    runcmd = [["/usr/local/sbin/devcontainer-builder-first-boot"]]
  }
}
