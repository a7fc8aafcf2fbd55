#!/usr/bin/env bash
# MCR scaled out on loopback (docs/scale-out.md): PostgreSQL, versitygw
# (S3, posix backend), three mcrsrv replicas and HAProxy in front of them,
# round-robin with no affinity. Everything lives under one directory and
# stops on Ctrl-C.
#
#   deploy/cluster/run.sh            # then: https://localhost:8443 (admin password printed)
#   LB_PORT=9443 deploy/cluster/run.sh
#
# Needs: go, PostgreSQL's initdb/postgres (apt-get install postgresql),
# haproxy (apt-get install haproxy), versitygw
# (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0). Run as
# root, PostgreSQL is started as the postgres user (it refuses root).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

WORK=${MCR_CLUSTER_DIR:-$(mktemp -d /tmp/mcr-cluster.XXXXXX)}
LB_PORT=${LB_PORT:-8443}
PG_PORT=${PG_PORT:-55432}
S3_PORT=${S3_PORT:-57070}
REPLICA_PORT=${REPLICA_PORT:-18443} # replicas on REPLICA_PORT, +1, +2
REPLICAS=${REPLICAS:-3}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; files are in $WORK"
}
trap cleanup EXIT INT TERM

need() { command -v "$1" >/dev/null 2>&1 || { echo "run.sh: $1 not found ($2)" >&2; exit 1; }; }
need go "https://go.dev/dl"
need haproxy "apt-get install haproxy"
need versitygw "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
PGBIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
[ -x "$PGBIN/initdb" ] || { echo "run.sh: PostgreSQL not found (apt-get install postgresql)" >&2; exit 1; }

echo "building mcrsrv into $WORK/bin"
go build -o "$WORK/bin/" ./cmd/mcrsrv ./cmd/mcrctl

# PostgreSQL: a private cluster in $WORK/pg.
PG_PASSWORD=${PG_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
as_pg=()
mkdir -p "$WORK/pg"
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$WORK/pg"
  as_pg=(runuser -u postgres --)
fi
if [ ! -f "$WORK/pg/data/PG_VERSION" ]; then
  printf '%s\n' "$PG_PASSWORD" > "$WORK/pg/pwfile"
  [ "$(id -u)" = 0 ] && chown postgres: "$WORK/pg/pwfile"
  "${as_pg[@]}" "$PGBIN/initdb" -D "$WORK/pg/data" -U mcr --pwfile "$WORK/pg/pwfile" \
    --auth scram-sha-256 -E UTF8 --locale C >/dev/null
  rm -f "$WORK/pg/pwfile"
  printf '%s\n' "$PG_PASSWORD" > "$WORK/pg.password"
  chmod 600 "$WORK/pg.password"
fi
PG_PASSWORD=$(cat "$WORK/pg.password")
"${as_pg[@]}" "$PGBIN/postgres" -D "$WORK/pg/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" \
  -c unix_socket_directories="$WORK/pg" >"$WORK/pg.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.1
done
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { echo "PostgreSQL did not start; see $WORK/pg.log" >&2; exit 1; }
echo "PostgreSQL on 127.0.0.1:$PG_PORT"

# versitygw: the bucket "mcr" is the directory $WORK/s3/mcr.
S3_SECRET=${S3_SECRET:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
mkdir -p "$WORK/s3/mcr"
versitygw --access mcr --secret "$S3_SECRET" --port "127.0.0.1:$S3_PORT" --quiet --health /health \
  posix "$WORK/s3" >"$WORK/s3.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$S3_PORT/health" >/dev/null && break; sleep 0.1; done
echo "versitygw (S3) on 127.0.0.1:$S3_PORT, bucket mcr"

# What the replicas share (each also a key in mcr.toml; see docs/scale-out.md).
mkdir -p "$WORK/keys"
chmod 700 "$WORK/keys"
[ -f "$WORK/http_secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/http_secret"
export MCR_DATABASE_DRIVER=postgres
export MCR_DATABASE_DSN="postgres://mcr:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
export MCR_STORAGE_DRIVER=s3 MCR_STORAGE_S3_BUCKET=mcr MCR_STORAGE_S3_REGION=us-east-1
export MCR_STORAGE_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" MCR_STORAGE_S3_PATH_STYLE=true
export MCR_STORAGE_S3_ACCESS_KEY=mcr MCR_STORAGE_S3_SECRET_KEY="$S3_SECRET"
export MCR_IDENTITY_KEYS_DIR="$WORK/keys"
MCR_SERVER_HTTP_SECRET=$(cat "$WORK/http_secret")
export MCR_SERVER_HTTP_SECRET

servers=""
for i in $(seq 0 $((REPLICAS - 1))); do
  port=$((REPLICA_PORT + i))
  "$WORK/bin/mcrsrv" init --dir "$WORK/r$i" --hostname localhost --listen "127.0.0.1:$port" \
    --grpc-listen 127.0.0.1:0 | sed "s/^/[r$i init] /"
  "$WORK/bin/mcrsrv" server --config "$WORK/r$i/mcr.toml" >"$WORK/r$i.log" 2>&1 &
  pids+=($!)
  servers+="  server r$i 127.0.0.1:$port ssl verify none check inter 500ms fall 2 rise 2"$'\n'
done

cat "$WORK/r0/certs/cert.pem" "$WORK/r0/certs/key.pem" > "$WORK/lb.pem"
chmod 600 "$WORK/lb.pem"
# deploy/cluster/haproxy.cfg (the compose file's) with this run's frontend
# address and certificate and its loopback replicas.
awk -v bind="  bind 127.0.0.1:$LB_PORT ssl crt $WORK/lb.pem" \
  '/^  bind /{print bind; next} /^  (default-)?server /{next} {print}' \
  deploy/cluster/haproxy.cfg >"$WORK/haproxy.cfg"
printf '%s' "$servers" >>"$WORK/haproxy.cfg"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fsk "https://127.0.0.1:$LB_PORT/v1/health" >/dev/null && break
  sleep 0.2
done
curl -fsk "https://127.0.0.1:$LB_PORT/v1/health" >/dev/null || { echo "the cluster did not come up; logs in $WORK" >&2; exit 1; }

cat <<EOF

MCR cluster up: https://localhost:$LB_PORT  (HAProxy, round-robin over $REPLICAS replicas)
  CA certificate:  $WORK/r0/certs/cert.pem
  replicas:        127.0.0.1:$REPLICA_PORT..$((REPLICA_PORT + REPLICAS - 1)), logs $WORK/r*.log
  PostgreSQL:      127.0.0.1:$PG_PORT (user mcr, password in $WORK/pg.password)
  S3 (versitygw):  http://127.0.0.1:$S3_PORT, bucket mcr
  try:             crane auth login localhost:$LB_PORT -u admin -p '<password above>'
Ctrl-C stops everything.
EOF
wait -n "${pids[@]}" || true
echo "a process exited; stopping" >&2
