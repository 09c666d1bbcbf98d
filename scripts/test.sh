#!/usr/bin/env bash
# The test command: gates (rustfmt, clippy), then every unit and integration test against a
# real PostgreSQL and a real Redis that this script starts on free loopback ports, and stops
# again on the way out; then the HTTP-level tests once more on the embedded SQLite store, and
# a build of the server from exactly the files the Dockerfile copies.
#
# Where the servers come from, in order:
#   1. TEST_DATABASE_URL and TEST_REDIS_URL, if both are set: servers you run yourself (the
#      database user must be allowed to CREATE DATABASE);
#   2. PostgreSQL and Redis binaries on this machine, installed with apt-get if missing and
#      running as root;
#   3. docker compose (the postgres and redis services of docker-compose.yml), if an engine
#      is running.
# Extra arguments are passed to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Tests need no durability: the database is thrown away.
PG_EXTRA_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
# shellcheck source=scripts/lib/services.sh
. scripts/lib/services.sh

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

provide_services
# tests/tls.rs makes its certificates with the openssl command.
command -v openssl >/dev/null || apt_install openssl || die "the openssl command is needed by tests/tls.rs"
# tests/console.rs writes with the curl command, and drives the web console in a headless
# Chromium, through chromedriver.
command -v curl >/dev/null || apt_install curl || die "the curl command is needed by tests/console.rs"
command -v chromedriver >/dev/null || apt_install chromium chromium-driver \
    || die "chromium and chromedriver are needed by tests/console.rs: apt-get install chromium chromium-driver"

export TMPDIR="$work/tmp"
log "cargo test (HTTP tests on PostgreSQL)"
cargo test --locked --all-targets "$@"
log "cargo test (rbac-client and rbacctl, against the server built above)"
cargo test --locked -p rbac-client "$@"
log "cargo test (HTTP tests again, on the embedded SQLite store)"
TEST_STORE=sqlite cargo test --locked --test api --test authzen --test batch --test documents --test who_can --test changes --test cluster --test keys --test tenants --test server --test watch "$@"

# The container image builds from what the Dockerfile copies, and nothing else: build the
# server from exactly those files. The dev profile and the shared target directory reuse the
# dependencies built above, so this costs one compile of the crate; the files needed are the
# same for the release build the Dockerfile runs.
log "the Dockerfile's build context is enough to build the server"
context="$work/docker-context"
mkdir -p "$context"
sources=$(awk '/^FROM /{stage++} stage == 1 && /^COPY / && !/--from=/ {for (i = 2; i < NF; i++) print $i}' Dockerfile)
[ -n "$sources" ] || die "found no COPY in the Dockerfile's build stage"
for source in $sources; do
  cp -r --parents "$source" "$context/"
done
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
(cd "$context" && CARGO_TARGET_DIR="$target_dir" cargo build --locked -p rbac-server -p rbac-client --bins --quiet) \
  || die "the server does not build from the files the Dockerfile copies: ${sources//$'\n'/ }"
