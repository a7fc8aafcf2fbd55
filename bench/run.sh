#!/usr/bin/env bash
# MCR vs upstream distribution benchmark. See bench/README.md.
#   bash bench/run.sh           full run (3 rounds: 512 MiB blob in 3 push styles, 300 images, 5 s manifest load, 64-client artifacts; then the cluster scenario)
#   bash bench/run.sh --smoke   tiny sizes, one round: proves the harness works
# Any other flags are passed to mcrbench (e.g. --keep, --rounds 5, --h2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
bin=$(mktemp -d "${TMPDIR:-/tmp}/mcrbench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT

echo "building upstream registry (distribution v3.1.2 from the module cache), mcrsrv and mcrbench..." >&2
# cmd/registry is a `tool` in go.mod, so its go.sum entries stay put.
"$GO" build -o "$bin/registry" github.com/distribution/distribution/v3/cmd/registry
"$GO" build -o "$bin/mcrsrv" ./cmd/mcrsrv
"$GO" build -o "$bin/mcrbench" ./bench/cmd/mcrbench
"$bin/registry" --version >&2 || true

mkdir -p bench/results
"$bin/mcrbench" -registry "$bin/registry" -mcrsrv "$bin/mcrsrv" -out bench/results/latest.json "$@"

# Scale-out: push+pull of small images through HAProxy with one and with
# three replicas on PostgreSQL + versitygw (test/cluster_bench_test.go).
ops=60
for a in "$@"; do [ "$a" = "--smoke" ] && ops=5; done
echo "cluster scenario: ${ops} images through the balancer, 1 and 3 replicas..." >&2
"$GO" test -run '^$' -bench BenchmarkClusterPushPull -benchtime "${ops}x" -count 1 ./test | tee bench/results/cluster.txt
awk '/replicas=1/ {one=$(NF-1)} /replicas=3/ {three=$(NF-1)}
     END {if (one > 0) printf "cluster: %.2f images/s with 1 replica, %.2f with 3: ratio %.2f\n", one, three, three/one}' bench/results/cluster.txt
