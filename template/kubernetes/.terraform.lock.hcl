# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/coder/coder" {
  version     = "2.20.0"
  constraints = "2.20.0"
  hashes = [
    "h1:lt3KDEibbIoYq878afUQItonCg5P1TI+4akjPVRjjAU=",
  ]
}

provider "registry.terraform.io/hashicorp/kubernetes" {
  version     = "3.2.1"
  constraints = "3.2.1"
  hashes = [
    "h1:I+nj2bBzaQri3So3Lm+CJdTxLvNZqBIInce61dR4V0s=",
  ]
}
