#!/usr/bin/env bash
# The benchmark suite. Starts its own PostgreSQL (with default durability) and Redis on free
# loopback ports, seeds the dataset in bulk, runs two rbac-server instances and the bare
# axum baseline, measures, prints a table and writes it into docs/PERFORMANCE.md. Needs no
# network beyond the package registries (wrk is installed with apt-get when missing).
#
#   scripts/bench.sh                  # about 5 minutes after the build
#   BENCH_SECONDS=30 scripts/bench.sh # longer load phases
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

PG_EXTRA_OPTIONS=""
# shellcheck source=scripts/lib/services.sh
. scripts/lib/services.sh

seconds=${BENCH_SECONDS:-10}
threads=2
connections=64

command -v wrk >/dev/null || apt_install wrk || die "wrk is needed: apt-get install wrk"
start_local_services
pgbench_bin="$TEST_PG_BIN/pgbench"

log "building (release)"
cargo build --release --locked --bin rbac-server --example bare_axum --example bench
bin=target/release
driver="$bin/examples/bench"
export TMPDIR="$work/tmp"

# At the default log level, as deployed: the per-request span is part of what is measured.
start_instance() { # name port
    local name=$1 port=$2
    DATABASE_URL=$TEST_DATABASE_URL REDIS_URL=$TEST_REDIS_URL PORT=$port HOST=127.0.0.1 \
        SERVER_ID=$name "$bin/rbac-server" >"$work/$name.log" 2>&1 &
    echo $!
}

wait_for() { # url
    for _ in $(seq 1 200); do
        curl -sf "$1" >/dev/null 2>&1 && return
        sleep 0.05
    done
    die "$1 did not come up"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

port_a=$(free_port)
port_b=$(free_port)
port_bare=$(free_port)
pid_a=$(start_instance bench-a "$port_a")
on_exit+=("kill $pid_a 2>/dev/null")
wait_for "http://127.0.0.1:$port_a/health"
pid_b=$(start_instance bench-b "$port_b")
on_exit+=("kill $pid_b 2>/dev/null")
wait_for "http://127.0.0.1:$port_b/health"
a="http://127.0.0.1:$port_a"
b="http://127.0.0.1:$port_b"

log "seeding 100 standard tenants and the large tenant"
"$driver" seed --database-url "$TEST_DATABASE_URL"
"$driver" requests --count 20000 >"$work/requests.jsonl"

# Memory and load time, on instance B: the standard tenants first, then the large one.
for i in $(seq 0 99); do
    curl -sf -X POST "$b/check-access" -H 'Content-Type: application/json' \
        -d "{\"tenant\":\"tenant-$(printf %03d "$i")\",\"user\":\"u\",\"resource\":\"r\",\"action\":\"a\"}" >/dev/null
done
rss_before=$(rss_kib "$pid_b")
load_start=$(date +%s.%N)
curl -sf -X POST "$b/check-access" -H 'Content-Type: application/json' \
    -d '{"tenant":"large","user":"u","resource":"r","action":"a"}' >/dev/null
load_end=$(date +%s.%N)
sleep 1
rss_after=$(rss_kib "$pid_b")
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
load_seconds=$(calc "$load_end - $load_start")
bytes_per_assignment=$(calc "($rss_after - $rss_before) * 1024 / 1000000")

run_wrk() { # url output
    wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s scripts/bench/check.lua "$1" \
        -- "$work/requests.jsonl" >"$2"
}

# wrk prints latencies as 123.45us, 1.23ms or 1.02s.
wrk_ms() { # file percentile
    awk -v p="$2" '$1 == p {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000;
        printf "%.3f", v }' "$1"
}
wrk_rps() { awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }

log "HTTP: check-access, rbac-server and the bare axum endpoint by turns, 5 rounds of ${seconds}s each"
"$bin/examples/bare_axum" --port "$port_bare" --requests "$work/requests.jsonl" &
pid_bare=$!
on_exit+=("kill $pid_bare 2>/dev/null")
bare="http://127.0.0.1:$port_bare"
wait_for_port() { for _ in $(seq 1 200); do port_in_use "$1" && return; sleep 0.05; done; die "port $1 did not open"; }
wait_for_port "$port_bare"
# Warm-up: every tenant of the request mix loaded, connections made, caches hot.
for url in "$a" "$bare"; do
    wrk -t"$threads" -c"$connections" -d3s -s scripts/bench/check.lua "$url" -- "$work/requests.jsonl" >/dev/null
done
# By turns, each run after a short warm-up of its own and in alternating order, so that
# whatever else the machine does falls on both alike; the median of the rounds is reported,
# and every round's ratio beside it.
rounds=5
# A's memory across the rounds: a server must not keep anything per request it has answered.
rss_http_before=$(rss_kib "$pid_a")
for round in $(seq 1 $rounds); do
    if [ $((round % 2)) = 1 ]; then order="rbac bare"; else order="bare rbac"; fi
    for which in $order; do
        if [ "$which" = rbac ]; then url=$a; else url=$bare; fi
        wrk -t"$threads" -c"$connections" -d2s -s scripts/bench/check.lua "$url" -- "$work/requests.jsonl" >/dev/null
        run_wrk "$url" "$work/wrk-$which-$round.txt"
    done
done
kill "$pid_bare"
rss_http_after=$(rss_kib "$pid_a")
rbac_requests=$(cat "$work"/wrk-rbac-*.txt | awk '/requests in/ { n += $1 } END { printf "%.1f", n / 1e6 }')
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
p50_of() { wrk_ms "$1" 50%; }
p99_of() { wrk_ms "$1" 99%; }
median_of() { # rbac|bare, a function of a wrk output file
    for r in $(seq 1 $rounds); do "$2" "$work/wrk-$1-$r.txt"; echo; done | median
}
rbac_rps=$(median_of rbac wrk_rps)
rbac_p50=$(median_of rbac p50_of)
rbac_p99=$(median_of rbac p99_of)
bare_rps=$(median_of bare wrk_rps)
bare_p50=$(median_of bare p50_of)
bare_p99=$(median_of bare p99_of)
round_ratios=$(for r in $(seq 1 $rounds); do
    awk -v a="$(wrk_rps "$work/wrk-rbac-$r.txt")" -v b="$(wrk_rps "$work/wrk-bare-$r.txt")" \
        'BEGIN { printf "%.2f ", a / b }'
done)

log "propagation (200 trials each)"
prop_standard=$("$driver" propagation --writer "$a" --reader "$b" --tenant tenant-000)
prop_large=$("$driver" propagation --writer "$a" --reader "$b" --tenant large)
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

log "writes: rbac-server (16 clients) and pgbench single-row inserts (8 clients), ${seconds}s each"
writes=$("$driver" writes --target "$a" --concurrency 16 --seconds "$seconds")
psql_cmd=(psql -q -X "$TEST_DATABASE_URL")
"${psql_cmd[@]}" -c "CREATE TABLE IF NOT EXISTS bench_insert (id BIGSERIAL PRIMARY KEY, v INT)"
echo "INSERT INTO bench_insert (v) VALUES (1);" >"$work/insert.sql"
"$pgbench_bin" -n -c 8 -j 2 -T "$seconds" -f "$work/insert.sql" "$TEST_DATABASE_URL" >"$work/pgbench.txt" 2>&1
pgbench_tps=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$work/pgbench.txt")
# The server's own write, one rbac_write call, straight from pgbench: what PostgreSQL alone
# allows, without HTTP, the cache, the bus or the peer's refresh.
cat >"$work/write.sql" <<'SQL'
\set t random(0, 99)
\set r random(1, 1000000000)
SELECT * FROM rbac_write('tenant-' || lpad(:t::text, 3, '0'), 'assign-user', 'group-00000', 'pgbench-' || :client_id || '-' || :r, NULL, NULL, 'pgbench');
SQL
"$pgbench_bin" -n -c 8 -j 2 -T "$seconds" -f "$work/write.sql" "$TEST_DATABASE_URL" >"$work/pgbench-write.txt" 2>&1
pgbench_write_tps=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$work/pgbench-write.txt")

log "in-process (criterion)"
cargo bench --locked --bench policy -- --output-format bencher 2>/dev/null | grep '^test ' >"$work/criterion.txt"
ns() { awk -v n="$1" '$2 == n {gsub(/,/, "", $5); print $5}' "$work/criterion.txt"; }
checks_per_s() { awk -v ns="$(ns "$1")" 'BEGIN { printf "%.0f", 4096 * 1e9 / ns }'; }
check_standard=$(checks_per_s check/standard)
check_large=$(checks_per_s check/large)
load_large_ms=$(calc "$(ns load/large) / 1000000")
apply_large_us=$(calc "$(ns apply_one_change/large) / 1000")
page_us() { calc "$(ns "page_of_100/$1") / 1000"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
table=$(cat <<EOF
Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB,
PostgreSQL $("$TEST_PG_BIN/postgres" --version | awk '{print $3}') with default durability,
Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2); load generator and servers
share the cores. Rerun: \`scripts/bench.sh\` (BENCH_SECONDS=$seconds).

| What | Measured | Target |
|---|---|---|
| check-access, rbac-server (wrk, $threads threads, $connections connections, median of $rounds) | $rbac_rps req/s, p50 $rbac_p50 ms, p99 $rbac_p99 ms | |
| check-access, bare axum + one HashMap (median of $rounds) | $bare_rps req/s, p50 $bare_p50 ms, p99 $bare_p99 ms | |
| ratio rbac-server / bare: req/s, p99 | $(ratio "$rbac_rps" "$bare_rps"), $(ratio "$rbac_p99" "$bare_p99") (req/s ratio of each round: ${round_ratios% }) | >= 0.90, <= 1.20 |
| in-process check, standard tenant (1 core) | $check_standard checks/s | >= 5000000 |
| in-process check, large tenant (1 core) | $check_large checks/s | >= 5000000 |
| build the large tenant from its rows (in process) | $(printf '%.0f' "$load_large_ms") ms | |
| apply one change to the large tenant (in process) | $(printf '%.1f' "$apply_large_us") us | |
| first page of 100, large tenant (in process): groups, a group's permissions, a group's members | $(printf '%.1f' "$(page_us groups)") us, $(printf '%.1f' "$(page_us group_permissions)") us, $(printf '%.0f' "$(page_us group_members)") us | |
| large tenant first load from PostgreSQL (over HTTP) | $(printf '%.2f' "$load_seconds") s | <= 2 s |
| RSS per assignment, large tenant | $(printf '%.0f' "$bytes_per_assignment") bytes ($(( (rss_after - rss_before) / 1024 )) MiB for 1,000,000) | <= 150 bytes |
| RSS of instance A before and after the HTTP rounds ($rbac_requests million checks timed, warm-ups besides) | $(( rss_http_before / 1024 )) MiB, $(( rss_http_after / 1024 )) MiB | |
| propagation A -> B, standard tenant (200 trials) | p50 $(field "$prop_standard" p50_ms) ms, p99 $(field "$prop_standard" p99_ms) ms | <= 1 ms, <= 5 ms |
| propagation A -> B, large tenant (200 trials) | p50 $(field "$prop_large" p50_ms) ms, p99 $(field "$prop_large" p99_ms) ms | p99 <= 10 ms |
| changing writes over 100 tenants (16 clients) | $(field "$writes" per_second) writes/s | |
| pgbench single-row insert (8 clients) | $pgbench_tps tps | |
| ratio writes / pgbench | $(ratio "$(field "$writes" per_second)" "$pgbench_tps") | >= 0.50 |
| rbac_write called straight from pgbench (8 clients) | $pgbench_write_tps tps ($(ratio "$pgbench_write_tps" "$pgbench_tps") of the inserts) | |
EOF
)

echo
echo "$table"
# The table replaces what stands between the markers; the rest of the document is prose.
doc=docs/PERFORMANCE.md
if grep -q '<!-- results:start -->' "$doc" 2>/dev/null; then
    echo "$table" >"$work/table.md"
    awk -v table="$work/table.md" '
        /<!-- results:start -->/ {
            print; print ""
            while ((getline line < table) > 0) print line
            print ""; skip = 1; next
        }
        /<!-- results:end -->/ { skip = 0 }
        !skip { print }' "$doc" >"$work/doc.md"
    cp "$work/doc.md" "$doc"
    log "table written to $doc"
else
    log "$doc has no results markers; table not written"
fi
