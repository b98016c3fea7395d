#!/usr/bin/env bash
# Runs Conveyor on a local kind cluster: creates the cluster `conveyor` when it is missing,
# builds the images conveyor:dev (production) and conveyor-sandboxes:dev (the SMTP sink and the
# payment sandbox, from the dev stack), loads them into the node and applies
# manifests/overlays/kind (Conveyor plus Kafka, PostgreSQL, Redis, an SMTP sink and the payment
# sandbox). Safe to run again: it rebuilds the images and rolls only what runs an older one.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER_NAME:-conveyor}
NAMESPACE=conveyor
IMAGE=conveyor:dev
SANDBOXES_IMAGE=conveyor-sandboxes:dev
TIMEOUT=${KIND_UP_TIMEOUT:-600s}

say() { printf '\033[1mkind-up:\033[0m %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

missing=()
command -v docker >/dev/null 2>&1 ||
  missing+=("docker: a Docker engine (https://docs.docker.com/engine/install/ or Docker Desktop)")
command -v kind >/dev/null 2>&1 ||
  missing+=("kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (e.g. go install sigs.k8s.io/kind@latest)")
command -v kubectl >/dev/null 2>&1 ||
  missing+=("kubectl 1.27 or newer: https://kubernetes.io/docs/tasks/tools/")
if ((${#missing[@]})); then
  say "missing tools; install them and run 'make kind-up' again:"
  for tool in "${missing[@]}"; do say "  - $tool"; done
  exit 1
fi
docker info >/dev/null 2>&1 ||
  fail "docker is installed but its engine does not answer (is the daemon running, may this user use it?)"
# The overlay uses kustomize v5 features (patches with targets), built into kubectl since 1.27.
minor=$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' || true)
minor=${minor%%$'\n'*}
if [[ -n $minor ]] && ((minor < 27)); then
  fail "kubectl 1.$minor is too old for manifests/ (kustomize v5); install 1.27 or newer"
fi

kubectl() { command kubectl --context "kind-$CLUSTER" "$@"; }

if grep -qx "$CLUSTER" <<<"$(kind get clusters 2>/dev/null || true)"; then
  say "kind cluster '$CLUSTER' exists; using it"
else
  say "creating kind cluster '$CLUSTER' (a minute or two)"
  kind create cluster --name "$CLUSTER" --wait 120s
fi

say "building $IMAGE and $SANDBOXES_IMAGE"
docker build --tag "$IMAGE" .
docker build --target sandboxes --tag "$SANDBOXES_IMAGE" .
say "loading them into the cluster's node"
kind load docker-image "$IMAGE" "$SANDBOXES_IMAGE" --name "$CLUSTER"
# The tag stays the same from build to build; the image id tells pods on an older build apart.
short_image_id() {
  local id
  id=$(docker image inspect --format '{{.Id}}' "$1")
  id=${id#sha256:}
  echo "${id:0:16}"
}
image_id=$(short_image_id "$IMAGE")
sandboxes_image_id=$(short_image_id "$SANDBOXES_IMAGE")

say "applying the namespace and the CRDs"
kubectl apply --server-side -k manifests/namespace
kubectl apply --server-side -k crds
# Custom resources can be applied only once the API server serves their kinds.
kubectl wait --for=condition=Established --timeout=60s \
  crd/streamprocessors.conveyor.dev crd/topics.conveyor.dev

# From the image just built, so no host tool must support ed25519.
new_signing_key() { docker run --rm "$IMAGE" new-signing-key; }

if ! kubectl -n "$NAMESPACE" get secret conveyor-edge >/dev/null 2>&1; then
  say "creating Secret conveyor-edge: a random token signing key and first admin password"
  kubectl -n "$NAMESPACE" create secret generic conveyor-edge \
    --from-literal=CONVEYOR_JWT_SIGNING_KEYS="$(new_signing_key)" \
    --from-literal=CONVEYOR_ADMIN_EMAIL=admin@conveyor.example \
    --from-literal=CONVEYOR_ADMIN_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '\n/+=')"
elif [[ -z $(kubectl -n "$NAMESPACE" get secret conveyor-edge \
  -o jsonpath='{.data.CONVEYOR_JWT_SIGNING_KEYS}') ]]; then
  # A cluster made when tokens were signed with a shared secret: its tokens end.
  say "adding a token signing key to Secret conveyor-edge"
  kubectl -n "$NAMESPACE" patch secret conveyor-edge --type json --patch \
    "[{\"op\":\"add\",\"path\":\"/data/CONVEYOR_JWT_SIGNING_KEYS\",\"value\":\"$(new_signing_key | base64 | tr -d '\n')\"}]"
fi

if ! kubectl -n "$NAMESPACE" get secret payment-gateway-tls >/dev/null 2>&1; then
  say "creating Secrets payment-gateway-tls and payment-gateway: the sandbox's certificate, its CA and a random API key"
  tls=$(mktemp -d)
  trap 'rm -rf "$tls"' EXIT
  # The dev stack's own certificate authority, from the sandboxes image, so the host needs no
  # openssl; the files come out as a tar stream.
  docker run --rm --entrypoint sh "$SANDBOXES_IMAGE" -c '
    python -c "import sys; from pathlib import Path; from conveyor.devstack.certificates import LocalAuthority; LocalAuthority(Path(\"/tmp/tls\")).server(\"payment-gateway\", sys.argv[1:])" \
      payment-gateway "payment-gateway.$0.svc" "payment-gateway.$0.svc.cluster.local" &&
    tar -C /tmp/tls -c ca.pem payment-gateway.pem payment-gateway-key.pem' "$NAMESPACE" |
    tar -x -C "$tls"
  kubectl -n "$NAMESPACE" create secret generic payment-gateway \
    --from-literal=PAYMENT_GATEWAY_API_KEY="sk_kind_$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')" \
    --from-file=PAYMENT_GATEWAY_CA_CERTIFICATES="$tls/ca.pem"
  # The payments processor reads it too: labelled, or the operator refuses to hand it over.
  kubectl -n "$NAMESPACE" label secret payment-gateway conveyor.dev/processor-access=true
  kubectl -n "$NAMESPACE" create secret tls payment-gateway-tls \
    --cert="$tls/payment-gateway.pem" --key="$tls/payment-gateway-key.pem"
fi

upgrade=false
kubectl -n "$NAMESPACE" get deployment conveyor-operator >/dev/null 2>&1 && upgrade=true

say "applying manifests/overlays/kind"
kubectl apply --server-side -k manifests/overlays/kind

if [[ $upgrade == true ]]; then
  say "rolling the pods that run an older build of $IMAGE or $SANDBOXES_IMAGE"
  # A patch that sets the value already there changes nothing, so pods on this build stay.
  for deployment in conveyor-operator:$image_id conveyor-edge:$image_id \
    smtp-sink:$sandboxes_image_id payment-gateway:$sandboxes_image_id; do
    kubectl -n "$NAMESPACE" patch deployment "${deployment%%:*}" --type merge --patch \
      "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"conveyor.dev/image-id\":\"${deployment#*:}\"}}}}}" \
      >/dev/null
  done
  # restartNonce is the StreamProcessor's own way to roll its pods.
  for processor in $(kubectl -n "$NAMESPACE" get streamprocessors -o name); do
    kubectl -n "$NAMESPACE" patch "$processor" --type merge \
      --patch "{\"spec\":{\"restartNonce\":\"$image_id\"}}" >/dev/null
  done
fi

say "waiting for Kafka, PostgreSQL and Redis"
for statefulset in kafka postgres redis; do
  kubectl -n "$NAMESPACE" rollout status "statefulset/$statefulset" --timeout="$TIMEOUT"
done
say "waiting for the sandboxes, the operator and the edge"
for deployment in smtp-sink payment-gateway conveyor-operator conveyor-edge; do
  kubectl -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout="$TIMEOUT"
done
say "waiting for the operator to make every topic and run every processor"
kubectl -n "$NAMESPACE" wait --for=condition=Ready --timeout="$TIMEOUT" topics --all
kubectl -n "$NAMESPACE" wait --for=condition=Ready --timeout="$TIMEOUT" streamprocessors --all
kubectl -n "$NAMESPACE" get streamprocessors,topics

cat >&2 <<MESSAGE

Conveyor runs on kind cluster '$CLUSTER' (kubectl context kind-$CLUSTER, namespace $NAMESPACE).

  Reach the edge:   kubectl --context kind-$CLUSTER -n $NAMESPACE port-forward svc/conveyor-edge 18000:80
  then              http://127.0.0.1:18000/docs (API at http://127.0.0.1:18000/api/v1)
  First admin:      admin@conveyor.example, password:
                    kubectl --context kind-$CLUSTER -n $NAMESPACE get secret conveyor-edge \\
                      -o jsonpath='{.data.CONVEYOR_ADMIN_PASSWORD}' | base64 -d
  Processors:       kubectl --context kind-$CLUSTER -n $NAMESPACE get sp,tp
  Operator metrics: kubectl --context kind-$CLUSTER -n $NAMESPACE port-forward svc/conveyor-operator-metrics 9100
  Tear it down:     make kind-down
MESSAGE
