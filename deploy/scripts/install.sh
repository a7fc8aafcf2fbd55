#!/usr/bin/env bash
# install.sh: install MCR on a plain systemd host (no containers).
#
#   sudo deploy/scripts/install.sh                       # the real system
#   deploy/scripts/install.sh --destdir /tmp/root        # a scratch root (CI)
#
# Idempotent: a second run changes nothing (files are compared before being
# replaced, modes and owners only fixed when they differ). It never
# overwrites /srv/mcr/mcr.toml, certificates, keys or data.
#
# Steps:
#   1. system user and group `mcr` (systemd-sysusers, else useradd)
#   2. binaries mcrsrv, mcrctl, mcr-web (those present) into PREFIX/bin
#   3. data tree /srv/mcr/{certs,keys,layers,backups}, mode 0700, owned by mcr
#   4. /srv/mcr/mcr.toml from deploy/examples/mcr.toml if there is none
#   5. systemd units into /etc/systemd/system (mcr-web.service only with mcr-web)
#   6. systemctl daemon-reload if a unit changed
#
# With a DESTDIR everything goes under DESTDIR and nothing touches the real
# system: the user is created with `systemd-sysusers --root=DESTDIR` (in
# DESTDIR/etc/passwd; skipped if systemd-sysusers is missing), ownership is
# set only when running as root, and systemctl is never called.
#
# Options (environment variables in brackets):
#   --destdir DIR   install under DIR instead of /               [DESTDIR]
#   --prefix DIR    binaries go to DIR/bin (default /usr/local)  [PREFIX]
#   --from DIR      where the built binaries are (default bin/static if it
#                   holds mcrsrv, else bin/)                     [BIN_DIR]
#   -h, --help
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BIN_DIR=${BIN_DIR:-}
while [ $# -gt 0 ]; do
	case $1 in
	--destdir) DESTDIR=${2:?--destdir needs a directory}; shift 2 ;;
	--destdir=*) DESTDIR=${1#*=}; shift ;;
	--prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
	--prefix=*) PREFIX=${1#*=}; shift ;;
	--from) BIN_DIR=${2:?--from needs a directory}; shift 2 ;;
	--from=*) BIN_DIR=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(dirname "$HERE")
REPO=$(dirname "$DEPLOY")

if [ -n "$DESTDIR" ]; then
	mkdir -p "$DESTDIR"
	DESTDIR=$(cd "$DESTDIR" && pwd)
	[ "$DESTDIR" = / ] && DESTDIR=
fi
case $PREFIX in /*) ;; *) echo "install.sh: --prefix must be absolute" >&2; exit 2 ;; esac
PREFIX=${PREFIX%/}
if [ -z "$BIN_DIR" ]; then
	if [ -x "$REPO/bin/static/mcrsrv" ]; then BIN_DIR=$REPO/bin/static; else BIN_DIR=$REPO/bin; fi
fi
if [ ! -x "$BIN_DIR/mcrsrv" ]; then
	echo "install.sh: $BIN_DIR/mcrsrv not found: run 'make static' (or 'make build') first" >&2
	exit 1
fi

DATA=/srv/mcr
UNIT_DIR=/etc/systemd/system
SVC_USER=mcr
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
CHANGED=0       # anything at all
UNITS_CHANGED=0
BINS_CHANGED=0

log() { printf '%-10s %s\n' "$1" "$2"; }

# owner_ids prints "uid gid" of $SVC_USER in the target root, or nothing.
owner_ids() {
	local pw=$DESTDIR/etc/passwd line
	if [ -n "$DESTDIR" ]; then
		[ -f "$pw" ] || return 0
		line=$(awk -F: -v u="$SVC_USER" '$1 == u { print $3, $4 }' "$pw")
		[ -n "$line" ] && echo "$line"
		return 0
	fi
	id -u "$SVC_USER" >/dev/null 2>&1 && echo "$(id -u "$SVC_USER") $(id -g "$SVC_USER")"
	return 0
}

# fix_meta PATH MODE [UID GID]: chmod/chown only when they differ.
fix_meta() {
	local p=$1 mode=$2 uid=${3:-} gid=${4:-}
	if [ "$(stat -c %a "$p")" != "$mode" ]; then
		chmod "$mode" "$p"; log mode "$mode ${p#"$DESTDIR"}"; CHANGED=1
	fi
	if [ -n "$uid" ] && [ "$IS_ROOT" = 1 ] && [ "$(stat -c %u:%g "$p")" != "$uid:$gid" ]; then
		chown "$uid:$gid" "$p"; log owner "$SVC_USER ${p#"$DESTDIR"}"; CHANGED=1
	fi
}

# ensure_dir PATH MODE [UID GID]
ensure_dir() {
	local p=$DESTDIR$1
	if [ ! -d "$p" ]; then
		install -d -m "$2" "$p"; log mkdir "$1"; CHANGED=1
	fi
	fix_meta "$p" "$2" "${3:-}" "${4:-}"
}

# ensure_parent PATH: create a system directory (0755) if missing; an existing
# one (/srv, /etc, /usr/local/bin, ...) is left exactly as it is.
ensure_parent() {
	if [ ! -d "$DESTDIR$1" ]; then
		install -d -m 755 "$DESTDIR$1"; log mkdir "$1"; CHANGED=1
	fi
}

# put_file SRC DST MODE [UID GID]: replace DST atomically when its content
# differs; sets WROTE=1 when it wrote, WROTE=0 when DST was up to date.
put_file() {
	local src=$1 dst=$DESTDIR$2 mode=$3
	WROTE=0
	if [ ! -f "$dst" ] || ! cmp -s "$src" "$dst"; then
		local tmp
		tmp=$(mktemp "$(dirname "$dst")/.install.XXXXXX")
		cat "$src" >"$tmp"
		chmod "$mode" "$tmp"
		mv -f "$tmp" "$dst"
		log install "$2"; CHANGED=1; WROTE=1
	fi
	fix_meta "$dst" "$mode" "${4:-}" "${5:-}"
}

# --- 1. user and group ------------------------------------------------------
SYSUSERS_CONF=$DEPLOY/systemd/mcr.sysusers.conf
if [ -n "$(owner_ids)" ]; then
	log ok "user $SVC_USER exists"
elif [ -n "$DESTDIR" ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		mkdir -p "$DESTDIR/etc"
		systemd-sysusers --root="$DESTDIR" "$SYSUSERS_CONF"
		log user "$SVC_USER (in $DESTDIR/etc/passwd)"; CHANGED=1
	else
		log skip "user $SVC_USER: systemd-sysusers not found (DESTDIR install; real system untouched)"
	fi
elif [ "$IS_ROOT" != 1 ]; then
	echo "install.sh: creating user $SVC_USER needs root (or use --destdir)" >&2
	exit 1
elif command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers "$SYSUSERS_CONF"
	log user "$SVC_USER"; CHANGED=1
else
	getent group "$SVC_USER" >/dev/null || groupadd --system "$SVC_USER"
	useradd --system --gid "$SVC_USER" --home-dir "$DATA" --no-create-home \
		--shell /usr/sbin/nologin --comment "MCR container registry" "$SVC_USER"
	log user "$SVC_USER"; CHANGED=1
fi
read -r OWN_UID OWN_GID <<<"$(owner_ids) " || true

# --- 2. binaries --------------------------------------------------------------
ensure_parent "$PREFIX"
ensure_parent "$PREFIX/bin"
INSTALLED_BINS=()
for b in mcrsrv mcrctl mcr-web; do
	if [ -x "$BIN_DIR/$b" ]; then
		put_file "$BIN_DIR/$b" "$PREFIX/bin/$b" 755
		if [ "$WROTE" = 1 ]; then BINS_CHANGED=1; fi
		INSTALLED_BINS+=("$b")
	else
		log skip "$b: not built ($BIN_DIR/$b)"
	fi
done

# --- 3. data tree -------------------------------------------------------------
ensure_parent /srv
ensure_dir "$DATA" 700 "$OWN_UID" "$OWN_GID"
for d in certs keys layers backups; do
	ensure_dir "$DATA/$d" 700 "$OWN_UID" "$OWN_GID"
done

# --- 4. configuration (never overwritten) -------------------------------------
if [ -e "$DESTDIR$DATA/mcr.toml" ]; then
	log kept "$DATA/mcr.toml"
else
	put_file "$DEPLOY/examples/mcr.toml" "$DATA/mcr.toml" 600 "$OWN_UID" "$OWN_GID"
	NEW_CONFIG=1
fi

# --- 5. systemd units -----------------------------------------------------------
ensure_parent /etc
ensure_parent /etc/systemd
ensure_parent "$UNIT_DIR"
UNITS=(mcr.service mcr-backup.service mcr-backup.timer)
HAVE_WEB=0
for b in "${INSTALLED_BINS[@]}"; do if [ "$b" = mcr-web ]; then HAVE_WEB=1; UNITS+=(mcr-web.service); fi; done
WEB_UNIT=; [ "$HAVE_WEB" = 1 ] && WEB_UNIT=" mcr-web.service"
RENDER=$(mktemp -d)
trap 'rm -rf "$RENDER"' EXIT
for u in "${UNITS[@]}"; do
	# Units name /usr/local/bin; follow --prefix.
	sed "s|/usr/local/bin/|$PREFIX/bin/|g" "$DEPLOY/systemd/$u" >"$RENDER/$u"
	put_file "$RENDER/$u" "$UNIT_DIR/$u" 644
	if [ "$WROTE" = 1 ]; then UNITS_CHANGED=1; fi
done

# --- 6. daemon-reload -------------------------------------------------------------
if [ "$UNITS_CHANGED" = 1 ]; then
	if [ -n "$DESTDIR" ]; then
		log skip "systemctl daemon-reload (DESTDIR install)"
	elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl daemon-reload; log reload "systemctl daemon-reload"
	else
		log skip "systemctl daemon-reload (systemd is not running)"
	fi
fi

if [ "$CHANGED" = 0 ]; then
	echo "install.sh: nothing to do, ${DESTDIR:-/} is up to date"
	exit 0
fi
echo "install.sh: done (${DESTDIR:-/})"
if [ -z "$DESTDIR" ]; then
	if [ "$BINS_CHANGED" = 1 ]; then
		echo "Binaries changed: if already running, systemctl restart mcr.service$WEB_UNIT"
	fi
	cat <<EOF
Next steps:
  - edit $DATA/mcr.toml${NEW_CONFIG:+ (just installed from deploy/examples/mcr.toml)}
  - put the TLS certificate and key in $DATA/certs/ (cert.pem, key.pem, owner $SVC_USER)
  - create the token signing key and the database (keeps mcr.toml and certs/;
    writes a self-signed certificate only if certs/ is empty):
      sudo -u $SVC_USER $PREFIX/bin/mcrsrv init --dir $DATA
  - systemctl enable --now mcr.service mcr-backup.timer$WEB_UNIT
  - curl -k https://localhost:8443/v1/health
EOF
fi
