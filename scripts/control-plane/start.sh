#!/usr/bin/env bash
# Start etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok
# on loopback, with a fake kwok Node. Everything lives in one temp dir:
#   $DIR/kubeconfig   admin kubeconfig (client cert, group system:masters)
#   $DIR/*.log        component logs
#   $DIR/stop.sh      stops the processes (by pid) and removes $DIR
# Usage: start-control-plane.sh [dir]   (prints "export KUBECONFIG=..." on stdout)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$("$HERE/build.sh")
DIR=${1:-$(mktemp -d -t conveyor-k8s.XXXXXX)}
mkdir -p "$DIR/etcd" "$DIR/pki"
cd "$DIR"
log() { echo "[start-control-plane] $*" >&2; }

USED=" "
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22000))  # below the ephemeral range (32768+)
    [[ $USED == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    USED+="$p "; echo "$p"; return
  done
}
ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); API_PORT=$(free_port)
KCM_PORT=$(free_port); SCHED_PORT=$(free_port)

# ---- PKI: CA, apiserver serving cert, admin client cert, service-account key --
cd pki
sign() { # name subject ext
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -out "$1.crt" -extfile <(printf '%b' "$3") 2>/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 -subj "/CN=conveyor-ca" 2>/dev/null
sign apiserver "/CN=kube-apiserver" \
  "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth"
sign admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
cd ..

cat >kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters:
- name: conveyor
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority: ${DIR}/pki/ca.crt
users:
- name: admin
  user:
    client-certificate: ${DIR}/pki/admin.crt
    client-key: ${DIR}/pki/admin.key
contexts:
- name: conveyor
  context: {cluster: conveyor, user: admin}
current-context: conveyor
EOF

PIDS=()
start() { # name args...
  local n=$1; shift
  "$BIN/$n" "$@" >"$DIR/$n.log" 2>&1 &
  PIDS+=($!); echo "$!" >>"$DIR/pids"
}
cat >stop.sh <<EOF
#!/usr/bin/env bash
# stop in reverse start order, each gracefully (SIGTERM, then SIGKILL after 15s)
for p in \$(tac "$DIR/pids"); do
  kill "\$p" 2>/dev/null || continue
  for _ in \$(seq 30); do kill -0 "\$p" 2>/dev/null || break; sleep 0.5; done
  kill -9 "\$p" 2>/dev/null || true
done
rm -rf "$DIR"
EOF
chmod +x stop.sh
trap 'log "startup failed; logs in $DIR"; while read -r p; do kill "$p" 2>/dev/null || true; done <"$DIR/pids"' ERR

wait_for() { # what cmd...
  local what=$1; shift
  for _ in $(seq 1 120); do "$@" >/dev/null 2>&1 && { log "$what ready"; return 0; }; sleep 0.5; done
  log "$what did not become ready; see $DIR/*.log"; return 1
}
CURL=(curl -sf --cacert pki/ca.crt --cert pki/admin.crt --key pki/admin.key)
API=https://127.0.0.1:${API_PORT}

start etcd --name=default --data-dir="$DIR/etcd" --unsafe-no-fsync \
  --listen-client-urls="http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls="http://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster="default=http://127.0.0.1:${ETCD_PEER_PORT}"
wait_for etcd curl -sf "http://127.0.0.1:${ETCD_PORT}/health"

start kube-apiserver --etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="${API_PORT}" \
  --cert-dir="$DIR/pki" --tls-cert-file=pki/apiserver.crt --tls-private-key-file=pki/apiserver.key \
  --client-ca-file=pki/ca.crt --authorization-mode=RBAC \
  --service-account-issuer="https://127.0.0.1:${API_PORT}" \
  --service-account-key-file=pki/sa.pub --service-account-signing-key-file=pki/sa.key \
  --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
  --allow-privileged=true --endpoint-reconciler-type=none
wait_for kube-apiserver "${CURL[@]}" "$API/readyz"

# The host-path provisioner gives PersistentVolumeClaims real volumes (directories under
# /tmp) and deletes them with their claims, as a kind cluster's default StorageClass does.
start kube-controller-manager --kubeconfig=kubeconfig --controllers='*' --leader-elect=false \
  --enable-hostpath-provisioner=true \
  --service-account-private-key-file=pki/sa.key --root-ca-file=pki/ca.crt \
  --bind-address=127.0.0.1 --secure-port="${KCM_PORT}"
# A pod whose claim was still being bound when it was first tried waits to be woken by the
# claim's binding; that wake-up is sometimes missed (a known scheduler race), and the pod
# would then sit Pending for the default 5 minutes. Here it is tried again within 10 s.
start kube-scheduler --kubeconfig=kubeconfig --leader-elect=false \
  --pod-max-in-unschedulable-pods-duration=10s \
  --bind-address=127.0.0.1 --secure-port="${SCHED_PORT}"
# kwok always also loads ~/.kwok/kwok.yaml if present, hence HOME=$DIR
HOME=$DIR start kwok --kubeconfig=kubeconfig --config="${BIN%/bin}/kwok-stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 --cidr=127.244.0.0/16 --node-ip=127.0.0.1
wait_for kube-controller-manager curl -skf "https://127.0.0.1:${KCM_PORT}/healthz"
wait_for kube-scheduler curl -skf "https://127.0.0.1:${SCHED_PORT}/healthz"

# fake Node managed by kwok (create via the API; no kubectl needed)
"${CURL[@]}" -o /dev/null -X POST -H 'Content-Type: application/json' "$API/api/v1/nodes" -d '{
  "apiVersion": "v1", "kind": "Node",
  "metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
    "labels": {"kubernetes.io/hostname": "kwok-node-0", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"}},
  "status": {"capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
             "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}}}'
"${CURL[@]}" -o /dev/null -X POST -H 'Content-Type: application/json' "$API/apis/storage.k8s.io/v1/storageclasses" -d '{
  "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
  "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
  "provisioner": "kubernetes.io/host-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}'
wait_for "node kwok-node-0 Ready" bash -c \
  "${CURL[*]} $API/api/v1/nodes/kwok-node-0 | grep -A3 '\"type\": \"Ready\"' | grep -q '\"status\": \"True\"'"

trap - ERR
log "control plane up in $DIR (apiserver $API); stop with $DIR/stop.sh"
echo "export KUBECONFIG=$DIR/kubeconfig"
