#!/usr/bin/env bash
# Makes etc/tern.toml runnable out of the box: creates var/ and, when the
# certificate it names does not exist yet, a self-signed certificate for the
# configured hostname (so STARTTLS works at once; replace it with a real one).
# Run as root, it also readies var/ for the user tern serve switches to (SPEC §2
# `user`, created by install-deps.sh): var/'s folders become that user's (0700),
# and the clone's own folders searchable (o+x); a folder above the clone that
# the user cannot search (such as /root) is never changed: the script says
# what to do instead and fails.
# Nothing here follows a symbolic link: var/ and the folders and files in it
# that the script touches must be real ones, owned by root, the invoking user
# or (the folders in var/, the certificate) tern's user; otherwise it refuses.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-etc/tern.toml}
umask 077
user=$(sed -n 's/^user *= *"\(.*\)".*/\1/p' "$config" | head -n1)
user=${user:-tern}

# The uids that may own what the script touches: root and whoever runs it
# (also through sudo); for what is inside var/, tern's user too (it owns
# var/spool and the others after a run as root).
trusted=(0 "$(id -u)" ${SUDO_UID:+"$SUDO_UID"})
user_uid=$(id -u "$user" 2>/dev/null || true)
refuse() {
  echo "prepare-run: $1: refusing to go on; remove it or fix its owner, then run again" >&2
  exit 1
}
# check PATH OWNERS...: PATH, when it exists, is no symbolic link and belongs
# to one of OWNERS.
check() {
  local path=$1 owner
  shift
  [[ -L $path ]] && refuse "$path is a symbolic link ($path -> $(readlink "$path"))"
  [[ -e $path ]] || return 0
  owner=$(stat -c %u "$path")
  for uid in "$@"; do [[ $owner == "$uid" ]] && return 0; done
  refuse "$path belongs to $(stat -c %U "$path") (uid $owner), not to root or to you"
}
check . "${trusted[@]}"
check var "${trusted[@]}"
for path in var/tls var/spool var/log var/mail var/tls/cert.pem var/tls/key.pem; do
  check "$path" "${trusted[@]}" ${user_uid:+"$user_uid"}
done
# Created one by one: mkdir without -p refuses whatever is there already.
for path in var var/tls var/spool var/log var/mail; do
  [[ -d $path ]] || mkdir "$path"
done
host=$(sed -n 's/^hostname *= *"\(.*\)".*/\1/p' "$config" | head -n1)
if [[ ! -f var/tls/cert.pem || ! -f var/tls/key.pem ]]; then
  # Made in a new folder of ours, then renamed into var/tls: a name swapped in
  # var/tls meanwhile is replaced, never written through.
  fresh=$(mktemp -d var/.tls.XXXXXX)
  trap 'rm -rf "$fresh"' EXIT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=${host:-localhost}" -addext "subjectAltName=DNS:${host:-localhost}" \
    -keyout "$fresh/key.pem" -out "$fresh/cert.pem" 2>/dev/null
  chmod 600 "$fresh/key.pem"
  mv -T "$fresh/key.pem" var/tls/key.pem
  mv -T "$fresh/cert.pem" var/tls/cert.pem
  echo "created a self-signed certificate for ${host:-localhost} in var/tls/"
fi

[[ $(id -u) -eq 0 ]] || exit 0
if ! getent passwd "$user" >/dev/null; then
  echo "prepare-run: user \"$user\" does not exist: run scripts/install-deps.sh as root, or" \
    "useradd --system --no-create-home --shell /usr/sbin/nologin $user" >&2
  exit 1
fi
clone=$(pwd -P)
# The clone's own folders: searchable by everyone (o+x, no read).
chmod o+x "$clone" var
# Everything above the clone must already be searchable by the user: the
# first folder from / down that is not is the one to name.
dir=""
IFS=/ read -ra parts <<<"${clone#/}"
for part in "${parts[@]::${#parts[@]}-1}"; do
  dir="$dir/$part"
  if ! runuser -u "$user" -- test -x "$dir"; then
    cat >&2 <<MSG
prepare-run: user "$user", which tern serve runs as when started as root, cannot
reach $clone: $dir is $(stat -c '%A %U:%G' "$dir") and is left as it is.
Do one of these:
  - clone tern where every user may search the path, e.g. /opt/tern or /srv/tern
    (git clone ... /opt/tern && cd /opt/tern && make run);
  - run make run as an ordinary user (tern serve then runs as that user)$(
    [[ $dir == /root || $dir == /home/* ]] || printf ';\n  - or, if that suits this machine, chmod o+x %s' "$dir")
MSG
    exit 1
  fi
done
# What tern writes belongs to it, also what a tern running as root wrote
# before. chown -R changes a symbolic link inside, not what it points to;
# the chmod runs as that user, so a link it swaps in reaches nothing more.
chown -R "$user": var/spool var/log var/mail var/tls
runuser -u "$user" -- chmod -R go-rwx var/spool var/log var/mail var/tls
