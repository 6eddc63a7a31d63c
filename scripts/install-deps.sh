#!/usr/bin/env bash
# Installs the Debian packages tern needs to build, test and benchmark, and,
# run as root, the system user `tern` that `tern serve` started as root
# switches to (SPEC §2 `user`). Idempotent and non-interactive: packages
# already present are left alone, so a second run costs one dpkg query. Run as
# root, or as a user who may sudo.
set -euo pipefail

# The account tern runs as: no home, no login shell.
if [[ $(id -u) -eq 0 ]] && ! getent passwd tern >/dev/null; then
  useradd --system --no-create-home --shell /usr/sbin/nologin tern
  echo "created the system user tern" >&2
fi

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries (DESIGN.md, Dependencies)
  libasio-dev libssl-dev libc-ares-dev librocksdb-dev libtomlplusplus-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libreadline-dev
  libcrypt-dev libpq-dev libgtest-dev libgmock-dev libbenchmark-dev
  # DMARC: the Public Suffix List (libpsl reads Debian's publicsuffix file)
  libpsl-dev publicsuffix
  # tests and benchmarks: real peers
  python3 python3-pytest python3-aiosmtpd swaks libnet-ssleay-perl libauthen-sasl-perl
  postfix dnsmasq-base openssl tmux
  # tests: Dovecot as a real LMTP peer (tests/integration/dovecot_peer.py runs a
  # private instance from a temp folder; the system service is not used)
  dovecot-core dovecot-lmtpd
  procps psmisc
  # tests: PostgreSQL 15 for the shared spool (tests/integration/pgcluster.py runs a
  # private cluster from a temp folder; the system cluster is not used)
  postgresql-15
  # tests: fault injection (libfiu's fiu-run/fiu-ctrl: EIO from fsync/write)
  # and RocksDB's ldb (a damaged envelope record for the quarantine test)
  fiu-utils rocksdb-tools
  # tests: an independent SPF implementation to compare results with (pyspf)
  python3-spf
  # tests: DKIM signatures checked against independent implementations (dkimpy, Mail::DKIM)
  python3-dkim libmail-dkim-perl
  # the admin listener: HTTP/1.1 parsing (http-parser), sd_notify for Type=notify
  libhttp-parser-dev libsystemd-dev
  # tests: metrics scraped with a real Prometheus text parser; the web queue
  # viewer driven in a real headless Chromium
  python3-prometheus-client chromium chromium-driver python3-selenium
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is a benchmark and interop peer only: never let its package configure or
# start a system mail service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
