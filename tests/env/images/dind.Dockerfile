# A Docker engine in a container, as the Kubernetes template's DinD sidecar runs one: trixie's Docker
# 26 with the containerd image store (so buildx can export a registry cache). The socket goes to a
# shared volume, owned by a group the builder container joins.
FROM devcontainer-builder-test/debian:trixie-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates docker.io iptables procps tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/docker \
 && echo '{"features": {"containerd-snapshotter": true}}' > /etc/docker/daemon.json
ENTRYPOINT ["/usr/bin/tini", "--", "dockerd"]
