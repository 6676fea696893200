# A Docker engine in a container, as the templates' engine runs one: trixie's Docker 26 with the
# containerd image store (so buildx can export a registry cache), and the docker CLI for the startup
# probe. Like the docker:dind image, it takes `dockerd ARGS...` or just `ARGS...`. The socket goes to a
# shared volume, owned by a group the builder container joins.
FROM devcontainer-builder-test/debian:trixie-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates docker-cli docker.io iptables procps tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/docker \
 && echo '{"features": {"containerd-snapshotter": true}}' > /etc/docker/daemon.json \
 && printf '#!/bin/sh\n[ "${1:-}" = dockerd ] && shift\nexec dockerd "$@"\n' > /usr/local/bin/dockerd-entrypoint \
 && chmod 0755 /usr/local/bin/dockerd-entrypoint
ENTRYPOINT ["/usr/bin/tini", "--", "dockerd-entrypoint"]
