#!/usr/bin/env bash
# Makes etc/tern.toml runnable out of the box: creates var/ and, when the
# certificate it names does not exist yet, a self-signed certificate for the
# configured hostname (so STARTTLS works at once; replace it with a real one).
# Run as root, it also readies var/ for the user tern serve switches to (SPEC §2
# `user`, created by install-deps.sh): var/'s folders become that user's (0700),
# and the clone's own folders searchable (o+x); a folder above the clone that
# the user cannot search (such as /root) is never changed: the script says
# what to do instead and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-etc/tern.toml}
umask 077
mkdir -p var/tls var/spool var/log var/mail
host=$(sed -n 's/^hostname *= *"\(.*\)".*/\1/p' "$config" | head -n1)
if [[ ! -f var/tls/cert.pem || ! -f var/tls/key.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=${host:-localhost}" -addext "subjectAltName=DNS:${host:-localhost}" \
    -keyout var/tls/key.pem -out var/tls/cert.pem 2>/dev/null
  chmod 600 var/tls/key.pem
  echo "created a self-signed certificate for ${host:-localhost} in var/tls/"
fi

[[ $(id -u) -eq 0 ]] || exit 0
user=$(sed -n 's/^user *= *"\(.*\)".*/\1/p' "$config" | head -n1)
user=${user:-tern}
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
# What tern writes belongs to it, also what a tern running as root wrote before.
chown -R "$user": var/spool var/log var/mail var/tls
chmod -R go-rwx var/spool var/log var/mail var/tls
