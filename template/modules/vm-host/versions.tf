terraform {
  # no provider: the module only renders text (cloud-init user-data) for the VM template that calls it
  required_version = ">= 1.6"
}
