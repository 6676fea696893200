output "user_data" {
  value       = "#cloud-config\n${yamlencode(local.cloud_config)}"
  sensitive   = true
  description = "Cloud-init user-data for the VM (it holds the agent's token): pass it to the instance as is."
}

output "first_boot_script" {
  value       = local.first_boot
  description = "The first-boot script alone, for a template that assembles its own cloud-init (run it as root after writing env_file)."
}

output "env_file" {
  value       = local.env_file
  sensitive   = true
  description = "The env file alone (root:root, 0600, at env_file_path), for a template that assembles its own cloud-init."
}

output "env_file_path" {
  value       = local.env_file_path
  description = "Where the first-boot script and the service expect the env file."
}

output "service_name" {
  value       = "${var.service_name}.service"
  description = "The systemd unit running the builder."
}

output "status_url" {
  value       = local.status_url
  sensitive   = true
  description = "The status page for a coder_app on the builder agent (url = this): loopback, a privileged port no devcontainer can take, and the page's key, derived from builder_agent_token (without one, the page is read-only)."
}

output "status_healthcheck_url" {
  value       = "http://${local.serve_address}/healthz"
  description = "The status app's healthcheck URL."
}
