#!/usr/bin/env bash
# A real single-node Kubernetes for the template tests, from package registries only: the binaries that
# kubernetes-binaries.sh builds from the Go module proxy, Debian's containerd, runc, CNI plugins and etcd.
#
#   eval "$(tests/env/kubernetes.sh up)"     # prints: export KUBECONFIG=/var/lib/devcontainer-builder-k8s/admin.kubeconfig
#   tests/env/kubernetes.sh load IMAGE[=NAME]...   # images from the local Docker engine into the cluster
#   tests/env/kubernetes.sh volume NAMESPACE CLAIM [SIZE]   # a local volume bound to that claim, ahead of it
#   tests/env/kubernetes.sh status
#   tests/env/kubernetes.sh down             # the machine as it was found
#
# Everything the cluster keeps lives in one folder, $DCB_K8S_STATE (/var/lib/devcontainer-builder-k8s):
# certificates, kubeconfigs, etcd's data, a containerd of its own (root, state, socket: the host's dockerd
# and its containerd are left alone), the kubelet's root dir, pod logs, CNI's address leases, the local
# volumes, logs and pids. Its bridge (dcbk8s0, 10.213.0.1/24) is where the tests' servers listen.
# `down` stops every process by its pid, unmounts what the pods mounted, removes the bridge, the kubepods
# cgroups, the files the kubelet insists on putting outside the folder and the folder; it puts back the
# kernel settings the kubelet changes. Both `up` and `down` are idempotent.
#
# What this machine needs that a normal one does not: containerd's CRI with restrict_oom_score_adj (the
# bounding set lacks CAP_SYS_RESOURCE, so runc could not lower oom_score_adj), a locally made pause image,
# and images imported from the local engine (no registry). The kubelet runs with
# makeIPTablesUtilChains: false, so it adds no KUBE-FIREWALL chain (which would drop non-loopback traffic
# to 127.0.0.0/8 and break other tests on this machine); there is no kube-proxy or cluster DNS.
set -Eeuo pipefail

state=${DCB_K8S_STATE:-/var/lib/devcontainer-builder-k8s}
bridge=dcbk8s0
node_ip=10.213.0.1
pod_cidr=10.213.0.0/24
service_cidr=10.214.0.0/24
service_ip=10.214.0.1
node=dcb-k8s
apiserver_port=16443
etcd_port=23790
etcd_peer_port=23800
storage_class=local
pause_image=docker.io/devcontainer-builder-test/pause:3.10

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder
pki=$state/pki
sock=$state/containerd/containerd.sock
kubeconfig=$state/admin.kubeconfig
# the kubelet's kernel settings (setupKernelTunables) and the bridge plugin's forwarding: put back by down
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys
         kernel/keys/root_maxbytes net/ipv4/ip_forward)
# paths outside the folder the kubelet, containerd's CRI or CNI create whatever they are told
OUTSIDE=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /etc/cni /opt/cni)
DAEMONS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'kubernetes: error: %s\n' "$*" >&2; exit 1; }

pid_of() { cat "$state/run/$1.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }
kubectl_() { "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=30s "$@"; }

start() {
  # start NAME ARGV...: in a session of its own (it outlives this script), logging into the folder
  local name=$1
  shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/run/$name.pid"
}

wait_until() {
  # wait_until SECONDS DAEMON WHAT COMMAND...: poll COMMAND; fail early when DAEMON died
  local limit=$1 daemon=$2 what=$3 deadline
  shift 3
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$daemon"; then
      tail -n 30 "$state/logs/$daemon.log" >&2 || true
      die "$daemon exited before $what (log: $state/logs/$daemon.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$state/logs/$daemon.log" >&2 || true
      die "$what did not happen within $limit s (log: $state/logs/$daemon.log)"
    fi
    sleep 0.5
  done
}

binaries() {
  bin=$("$root/tests/env/kubernetes-binaries.sh")
  for tool in containerd runc etcd iptables ip openssl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run tests/env/provision.sh test"
  done
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing (containernetworking-plugins): run tests/env/provision.sh test"
}

# -- what was there before ---------------------------------------------------------------------------------

record_found() {
  # once per cluster: what down must leave as it is, or put back
  [ -f "$state/found" ] && return 0
  {
    for path in "${OUTSIDE[@]}"; do [ -e "$path" ] && echo "exists $path"; done
    for setting in "${SYSCTLS[@]}"; do echo "sysctl $setting $(tr '\t' ' ' <"/proc/sys/$setting")"; done
  } >"$state/found.tmp" || true
  mv "$state/found.tmp" "$state/found"
}

# -- certificates and configuration -------------------------------------------------------------------------

cert() {
  # cert NAME SUBJECT [SUBJECT-ALT-NAMES]: a key and a certificate of the cluster's CA
  local name=$1 subject=$2 sans=${3:-}
  [ -s "$pki/$name.crt" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

certificates() {
  mkdir -p "$pki"
  chmod 0700 "$pki"
  if [ ! -s "$pki/ca.crt" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=devcontainer-builder test cluster CA" -days 30 \
      -out "$pki/ca.crt" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$service_ip,IP:$node_ip"
  cert admin "/O=system:masters/CN=admin"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kubelet "/O=system:nodes/CN=system:node:$node"
  cert kubelet-serving "/CN=$node" "DNS:$node,IP:$node_ip,IP:127.0.0.1"
  if [ ! -s "$pki/sa.key" ]; then
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
}

write_kubeconfig() {
  # write_kubeconfig FILE CERT-NAME
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: devcontainer-builder
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: devcontainer-builder
  context:
    cluster: devcontainer-builder
    user: $2
current-context: devcontainer-builder
EOF
  chmod 0600 "$1"
}

configuration() {
  write_kubeconfig "$kubeconfig" admin
  write_kubeconfig "$state/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$state/scheduler.kubeconfig" scheduler
  write_kubeconfig "$state/kubelet.kubeconfig" kubelet
  mkdir -p "$state/cni/net.d" "$state/cni/ipam" "$state/volumes"
  cat >"$state/cni/net.d/10-devcontainer-builder.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "devcontainer-builder",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$state/cni/ipam"
      }
    }
  ]
}
EOF
  cat >"$state/containerd/config.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # pods' network namespaces are mounted in the state folder, not in /run/netns: rootful Podman (and
  # ip netns add) bind /run/netns onto itself when it is no mount point, which buries a pod's netns mount
  # made before that under the new bind, and containerd's unlink of it then fails with EBUSY for ever (the pod
  # stays Terminating and terraform destroy waits out its timeout; seen on a fresh machine)
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$state/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
  cat >"$state/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: AlwaysAllow
failSwapOn: false
makeIPTablesUtilChains: false
podLogsDir: $state/pod-logs
volumePluginDir: $state/kubelet/volume-plugins
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1Gi
  imagefs.available: 1Gi
  nodefs.inodesFree: 1%
  imagefs.inodesFree: 1%
serializeImagePulls: false
maxPods: 20
containerLogMaxSize: 10Mi
EOF
}

pause_image() {
  # FROM scratch with one static binary, as a docker-archive tarball ctr can import
  local src=$root/tests/env/images/pause/main.go key tarball work
  key=$(sha256sum "$src" | cut -c1-16)
  tarball=$cache/kubernetes/pause-$key.tar
  if [ ! -s "$tarball" ]; then
    say "pause image (a static Go binary, FROM scratch)"
    work=$(mktemp -d)
    mkdir -p "$work/rootfs" "$work/image"
    (cd "$work" && CGO_ENABLED=0 GOTOOLCHAIN=local GOCACHE=$cache/kubernetes/go/build GOFLAGS=-buildvcs=false \
      go build -trimpath -ldflags "-s -w" -o "$work/rootfs/pause" "$src")
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/image/layer.tar" pause
    local layer config
    layer=$(sha256sum "$work/image/layer.tar" | cut -d' ' -f1)
    printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
      "$(go env GOARCH)" "$layer" >"$work/image/config.json"
    config=$(sha256sum "$work/image/config.json" | cut -d' ' -f1)
    mv "$work/image/config.json" "$work/image/$config.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$config" "$pause_image" \
      >"$work/image/manifest.json"
    tar -C "$work/image" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
  fi
  ctr_ images import "$tarball" >/dev/null
}

# -- up ---------------------------------------------------------------------------------------------------

untainted() { [ "$(kubectl_ get node "$node" -o 'jsonpath={.spec.taints}')" = "" ]; }

running() {
  for daemon in "${DAEMONS[@]}"; do alive "$daemon" || return 1; done
  kubectl_ get --raw /readyz >/dev/null 2>&1
}

up() {
  binaries
  if [ -f "$state/run/kubelet.pid" ] && running; then
    say "the cluster is running ($state)"
    echo "export KUBECONFIG=$kubeconfig"
    return 0
  fi
  [ -d "$state" ] && { say "a cluster that is not whole: taking it down first"; down; }
  local start_time=$SECONDS
  mkdir -p "$state"/{run,logs,containerd,kubelet/root,kubelet/volume-plugins,etcd,apiserver,pod-logs}
  chmod 0700 "$state"
  record_found
  # a command that fails takes the half-made cluster down (a daemon that does not come up stops `up` with
  # its log's tail, and leaves the folder to look at: the next `up` or `down` clears it)
  trap 'say "up failed: the logs end with"; tail -n 5 "$state"/logs/*.log >&2 || true; down_logged' ERR
  certificates
  configuration

  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$node_ip/${pod_cidr#*/}" dev "$bridge"
  fi
  ip link set "$bridge" up

  say "containerd (its own: $sock)"
  start containerd containerd --config "$state/containerd/config.toml"
  wait_until 60 containerd "containerd's socket" ctr_ version
  pause_image

  say "etcd, kube-apiserver"
  start etcd etcd --name "$node" --data-dir "$state/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "$node=http://127.0.0.1:$etcd_peer_port" --log-level warn
  wait_until 60 etcd "etcd's health" curl -sf "http://127.0.0.1:$etcd_port/health"
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --secure-port="$apiserver_port" --advertise-address="$node_ip" \
    --cert-dir="$state/apiserver" --service-cluster-ip-range="$service_cidr" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --allow-privileged=true --enable-admission-plugins=NodeRestriction \
    --profiling=false --endpoint-reconciler-type=none
  # with -f: a controller-manager started before RBAC's bootstrap is done exits
  wait_until 120 kube-apiserver "the API server's readiness" \
    curl -skf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$apiserver_port/readyz"

  say "kube-controller-manager, kube-scheduler, kubelet"
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$state/controller-manager.kubeconfig" --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" --use-service-account-credentials=true --profiling=false
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$state/scheduler.kubeconfig" \
    --authentication-kubeconfig="$state/scheduler.kubeconfig" --authorization-kubeconfig="$state/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
  start kubelet "$bin/kubelet" --config="$state/kubelet/config.yaml" --kubeconfig="$state/kubelet.kubeconfig" \
    --container-runtime-endpoint="unix://$sock" --root-dir="$state/kubelet/root" --cert-dir="$state/kubelet/pki" \
    --hostname-override="$node" --node-ip="$node_ip"
  wait_until 120 kubelet "the node's registration" kubectl_ get node "$node"
  wait_until 120 kubelet "the node's readiness" kubectl_ wait --for=condition=Ready "node/$node" --timeout=5s
  wait_until 60 kube-controller-manager "the node's not-ready taint removed" untainted
  wait_until 60 kube-controller-manager "the default service account" kubectl_ -n default get serviceaccount default
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $storage_class
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  trap - ERR
  say "cluster up in $((SECONDS - start_time)) s: node $node, bridge $bridge ($node_ip), storage class $storage_class, state in $state"
  echo "export KUBECONFIG=$kubeconfig"
}

# -- images and volumes -------------------------------------------------------------------------------------

normalized() {
  # the name the kubelet asks containerd for: docker.io/[library/]NAME
  local name=$1 first=${1%%/*}
  if [[ $name != */* ]]; then
    echo "docker.io/library/$name"
  elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then
    echo "$name"
  else
    echo "docker.io/$name"
  fi
}

load() {
  # load IMAGE[=NAME]...: docker save | ctr import, then tagged with NAME too
  [ $# -gt 0 ] || die "load: name at least one image of the local Docker engine (IMAGE or IMAGE=NAME)"
  alive containerd || die "the cluster is not up: run tests/env/kubernetes.sh up"
  local sources=() pair
  for pair in "$@"; do sources+=("${pair%%=*}"); done
  docker save "${sources[@]}" | ctr_ images import - >/dev/null
  for pair in "$@"; do
    [[ $pair == *=* ]] || continue
    ctr_ images tag --force "$(normalized "${pair%%=*}")" "$(normalized "${pair#*=}")" >/dev/null
  done
}

volume() {
  # volume NAMESPACE CLAIM [SIZE]: a local PersistentVolume bound ahead to that claim
  [ $# -ge 2 ] || die "volume: give NAMESPACE CLAIM [SIZE]"
  local namespace=$1 claim=$2 size=${3:-100Gi} path
  path=$state/volumes/$namespace-$claim
  mkdir -p "$path"
  bin=$("$root/tests/env/kubernetes-binaries.sh")
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $namespace-$claim
  labels: {devcontainer-builder.test/volume: "true"}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: $storage_class
  claimRef: {namespace: $namespace, name: $claim}
  local: {path: $path}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$node]}
EOF
}

# -- down -------------------------------------------------------------------------------------------------

stop() {
  # stop NAME: TERM, then KILL after a bound
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/run/$1.pid"
}

ours() {
  # the pids of processes that name the folder in their command line (containerd's shims: -address $sock)
  local dir cmdline
  for dir in /proc/[0-9]*; do
    cmdline=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") || continue
    [[ $cmdline == *"$state/"* ]] && echo "${dir#/proc/}"
  done
}

down_logged() { down || true; }

down() {
  if [ -d "$state" ] && alive kube-apiserver && alive kubelet; then
    bin=$("$root/tests/env/kubernetes-binaries.sh")
    say "deleting every workload and pod (their containers, volumes and networks go with them)"
    kubectl_ delete deployments,replicasets,statefulsets,daemonsets,jobs --all --all-namespaces --wait=false >/dev/null 2>&1 || true
    kubectl_ delete pods --all --all-namespaces --grace-period=5 --timeout=90s >/dev/null 2>&1 \
      || kubectl_ delete pods --all --all-namespaces --grace-period=0 --force --timeout=30s >/dev/null 2>&1 || true
  fi
  local daemon
  for daemon in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$daemon"; done
  if alive containerd; then
    # what the kubelet did not stop: kill and delete the tasks, which runs their cleanup
    local task
    for task in $(ctr_ tasks list -q 2>/dev/null); do
      ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    for task in $(ctr_ tasks list -q 2>/dev/null); do
      ctr_ tasks delete --force "$task" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  local pid
  for pid in $(ours); do kill -KILL "$pid" 2>/dev/null || true; done

  # mounts: the pods' volumes, the containers' root filesystems, the kubelet's root (bound onto itself)
  local target
  while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done < <(awk '{print $5}' /proc/self/mountinfo | grep -F "$state" | sort -r)

  local table chain family
  for family in iptables ip6tables; do
    for table in filter nat mangle; do
      for chain in $("$family" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
        "$family" -t "$table" -S 2>/dev/null | grep -E -- "-j $chain( |$)" | sed 's/^-A/-D/' | while read -r rule; do
          read -ra args <<<"$rule"
          "$family" -t "$table" "${args[@]}" 2>/dev/null || true
        done
        "$family" -t "$table" -F "$chain" 2>/dev/null || true
        "$family" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  ip link del "$bridge" 2>/dev/null || true
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [ -d "${hierarchy}kubepods" ] || continue
    find "${hierarchy}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done

  if [ -f "$state/found" ]; then
    local path setting value
    for path in "${OUTSIDE[@]}"; do
      grep -qxF "exists $path" "$state/found" || { mountpoint -q "$path" && umount -l "$path"; rm -rf "$path"; } 2>/dev/null || true
    done
    while read -r _ setting value; do
      [ "$(tr '\t' ' ' <"/proc/sys/$setting")" = "$value" ] || printf '%s\n' "$value" >"/proc/sys/$setting" 2>/dev/null || true
    done < <(grep '^sysctl ' "$state/found")
  fi
  rm -rf "$state"
  [ -z "$(ours)" ] || die "processes of the cluster are still running: $(ours | tr '\n' ' ')"
  say "cluster down: the machine is as it was"
}

status() {
  local daemon code=0
  for daemon in "${DAEMONS[@]}"; do
    if alive "$daemon"; then echo "$daemon: running (pid $(pid_of "$daemon"))"; else echo "$daemon: stopped"; code=3; fi
  done
  if [ "$code" = 0 ]; then
    bin=$("$root/tests/env/kubernetes-binaries.sh")
    kubectl_ get nodes -o wide
    echo "export KUBECONFIG=$kubeconfig"
  fi
  return "$code"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  load) shift; load "$@" ;;
  volume) shift; volume "$@" ;;
  *) echo "usage: $0 up|down|status|load IMAGE[=NAME]...|volume NAMESPACE CLAIM [SIZE]" >&2; exit 2 ;;
esac
