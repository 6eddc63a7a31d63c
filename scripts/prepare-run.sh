#!/usr/bin/env bash
# Makes etc/tern.toml runnable out of the box: creates var/ and, when the
# certificate it names does not exist yet, a self-signed certificate for the
# configured hostname (so STARTTLS works at once; replace it with a real one).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-etc/tern.toml}
mkdir -p var/tls var/spool var/log var/mail
host=$(sed -n 's/^hostname *= *"\(.*\)".*/\1/p' "$config" | head -n1)
if [[ ! -f var/tls/cert.pem || ! -f var/tls/key.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=${host:-localhost}" -addext "subjectAltName=DNS:${host:-localhost}" \
    -keyout var/tls/key.pem -out var/tls/cert.pem 2>/dev/null
  chmod 600 var/tls/key.pem
  echo "created a self-signed certificate for ${host:-localhost} in var/tls/"
fi
