# Stand-in for codercom/enterprise-base:ubuntu, the builder's default fallback image, which cannot be
# pulled on the test machines (no registry access). It has what matters to the builder and to Coder's
# agent: bash, git, curl, sudo and a non-root user `coder` with uid 1000 as the image's user.
FROM devcontainer-builder-test/debian:trixie-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bash ca-certificates curl git procps sudo \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --shell /bin/bash coder \
 && echo 'coder ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/coder \
 && chmod 0440 /etc/sudoers.d/coder
USER coder
WORKDIR /home/coder
