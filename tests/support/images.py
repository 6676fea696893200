"""The images tests build on, under names of their own.

No registry is reachable on the test machines, so tests/env/provision.sh makes stand-ins: a debootstrap
of Debian trixie, and an image with what the default fallback image has (bash, git, curl, sudo, user
coder). They are tagged under test-only names, never under the real upstream names, so that on a
developer's machine they cannot shadow debian:trixie-slim or codercom/enterprise-base:ubuntu.
"""

BASE_IMAGE = "devcontainer-builder-test/debian:trixie-slim"
FALLBACK_IMAGE = "devcontainer-builder-test/enterprise-base:ubuntu"
DIND_IMAGE = "devcontainer-builder-test/dind:trixie"
KV_IMAGE = "devcontainer-builder-test/kv:trixie"  # a database stand-in for compose projects (kv.Dockerfile)
