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
cargo build --release --locked -p rbac-server -p rbac-bench --bins
bin=target/release
driver="$bin/rbac-bench"
export TMPDIR="$work/tmp"

# At the default log level, as deployed: the per-request span is part of what is measured.
# Extra VAR=value arguments go to the instance's environment.
start_instance() { # name port [VAR=value...]
    local name=$1 port=$2
    shift 2
    env DATABASE_URL="$TEST_DATABASE_URL" REDIS_URL="$TEST_REDIS_URL" PORT="$port" HOST=127.0.0.1 \
        SERVER_ID="$name" "$@" "$bin/rbac-server" >"$work/$name.log" 2>&1 &
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
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

port_a=$(free_port)
port_b=$(free_port)
port_bare=$(free_port)
# The dataset goes straight into the tables: an instance that made the schema first, then the
# seeding, then the instances measured, which list the seeded tenants when they start.
pid_a=$(start_instance bench-a "$port_a")
wait_for "http://127.0.0.1:$port_a/health"
kill "$pid_a"
wait "$pid_a" 2>/dev/null || true
log "seeding 100 standard tenants and the large tenant"
"$driver" seed --database-url "$TEST_DATABASE_URL"
"$driver" requests --count 20000 >"$work/requests.jsonl"
# A takes the large tenant's policy document whole, and writes it as one statement.
pid_a=$(start_instance bench-a "$port_a" POLICY_MAX_BYTES=268435456 STORE_TIMEOUT_SECS=300)
on_exit+=("kill $pid_a 2>/dev/null")
wait_for "http://127.0.0.1:$port_a/health"
pid_b=$(start_instance bench-b "$port_b")
on_exit+=("kill $pid_b 2>/dev/null")
wait_for "http://127.0.0.1:$port_b/health"
a="http://127.0.0.1:$port_a"
b="http://127.0.0.1:$port_b"

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
"$bin/bare-axum" --port "$port_bare" --requests "$work/requests.jsonl" &
pid_bare=$!
on_exit+=("kill $pid_bare 2>/dev/null")
bare="http://127.0.0.1:$port_bare"
wait_for_port() { for _ in $(seq 1 200); do port_in_use "$1" && return; sleep 0.05; done; die "port $1 did not open"; }
wait_for_port "$port_bare"
# The load generator does not read the answers: make sure they are right first.
"$driver" verify --target "$a" --requests "$work/requests.jsonl"
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

log "batch: /check-access/batch (100 checks a request) and /check-access by turns, $rounds rounds of ${seconds}s each"
for round in $(seq 1 $rounds); do
    if [ $((round % 2)) = 1 ]; then order="single batch"; else order="batch single"; fi
    for which in $order; do
        if [ "$which" = batch ]; then size=100; else size=""; fi
        wrk -t"$threads" -c"$connections" -d2s -s scripts/bench/check.lua "$a" \
            -- "$work/requests.jsonl" $size >/dev/null
        wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s scripts/bench/check.lua "$a" \
            -- "$work/requests.jsonl" $size >"$work/wrk-$which-$round.txt"
    done
done
batch_checks=$(for r in $(seq 1 $rounds); do echo $(( $(wrk_rps "$work/wrk-batch-$r.txt") * 100 )); done | median)
single_checks=$(for r in $(seq 1 $rounds); do wrk_rps "$work/wrk-single-$r.txt"; echo; done | median)
batch_ratios=$(for r in $(seq 1 $rounds); do
    awk -v a="$(wrk_rps "$work/wrk-batch-$r.txt")" -v b="$(wrk_rps "$work/wrk-single-$r.txt")" \
        'BEGIN { printf "%.1f ", a * 100 / b }'
done)

log "propagation (200 trials each)"
prop_standard=$("$driver" propagation --writer "$a" --reader "$b" --tenant tenant-000)
prop_large=$("$driver" propagation --writer "$a" --reader "$b" --tenant large)
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

log "watch: a write on A to a watcher on B (200 trials); 1,000 idle watchers on B"
watch_prop=$("$driver" watch-propagation --writer "$a" --reader "$b" --tenant tenant-001)
# Check throughput on B with the idle watchers open and without, by turns in alternating
# order; and, at the first opening, what they take in anonymous memory.
watch_rounds=5
open_idle() {
    "$driver" idle-watchers --target "$b" --tenant tenant-002 --count 1000 \
        --seconds 3600 >"$work/idle.txt" &
    pid_idle=$!
    on_exit+=("kill $pid_idle 2>/dev/null")
    for _ in $(seq 1 600); do grep -q open= "$work/idle.txt" && break; sleep 0.1; done
    grep -q open= "$work/idle.txt" || die "the idle watchers did not open"
    sleep 1
}
close_idle() {
    kill "$pid_idle" 2>/dev/null || true
    wait "$pid_idle" 2>/dev/null || true
    rm -f "$work/idle.txt"
    sleep 1
}
wrk -t"$threads" -c"$connections" -d2s -s scripts/bench/check.lua "$b" -- "$work/requests.jsonl" >/dev/null
rss_unwatched=$(anon_kib "$pid_b")
open_idle
rss_watched=$(anon_kib "$pid_b")
close_idle
for round in $(seq 1 $watch_rounds); do
    if [ $((round % 2)) = 1 ]; then order="unwatched watched"; else order="watched unwatched"; fi
    for which in $order; do
        if [ "$which" = watched ]; then open_idle; fi
        wrk -t"$threads" -c"$connections" -d2s -s scripts/bench/check.lua "$b" -- "$work/requests.jsonl" >/dev/null
        run_wrk "$b" "$work/wrk-$which-$round.txt"
        if [ "$which" = watched ]; then close_idle; fi
    done
done
watched_rps=$(for r in $(seq 1 $watch_rounds); do wrk_rps "$work/wrk-watched-$r.txt"; echo; done | median)
unwatched_rps=$(for r in $(seq 1 $watch_rounds); do wrk_rps "$work/wrk-unwatched-$r.txt"; echo; done | median)
watch_ratios=$(for r in $(seq 1 $watch_rounds); do
    awk -v a="$(wrk_rps "$work/wrk-watched-$r.txt")" -v b="$(wrk_rps "$work/wrk-unwatched-$r.txt")" \
        'BEGIN { printf "%.2f ", a / b }'
done)

log "writes: rbac-server (16 clients) and pgbench single-row inserts (8 clients), ${seconds}s each"
writes=$("$driver" writes --target "$a" --concurrency 16 --seconds "$seconds")
bulk_writes=$("$driver" bulk-writes --target "$a" --concurrency 4 --changes 1000 --seconds "$seconds")
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

log "documents: the large tenant exported from B, applied to an empty tenant on A, and again"
# B's peak memory is reset first, so that what the export adds to it is measured.
echo 5 >"/proc/$pid_b/clear_refs"
rss_export_before=$(rss_kib "$pid_b")
export_start=$(date +%s.%N)
curl -sf "$b/tenant-policy?tenant=large" -o "$work/large.json"
export_seconds=$(calc "$(date +%s.%N) - $export_start")
export_peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid_b/status")
export_mb=$(calc "$(stat -c %s "$work/large.json") / 1000000")
sed '1s/^{"tenant":"large"/{"tenant":"large-copy"/' "$work/large.json" >"$work/large-copy.json"
apply_document() { # output file; prints the seconds taken
    local started
    started=$(date +%s.%N)
    curl -sf -X PUT "$a/tenant-policy" -H 'Content-Type: application/json' \
        --data-binary @"$work/large-copy.json" >"$1"
    calc "$(date +%s.%N) - $started"
}
apply_seconds=$(apply_document "$work/applied.json")
applied_changes=$(grep -o '"counts":{[^}]*}' "$work/applied.json" | grep -o ':[0-9]*' | tr -d : \
    | awk '{ n += $1 } END { print n + 0 }')
grep -q '"changed":true' "$work/applied.json" || die "the document did not apply: $(cat "$work/applied.json")"
reapply_seconds=$(apply_document "$work/reapplied.json")
grep -q '"changed":false' "$work/reapplied.json" || die "the document applied again changed the tenant"

log "many tenants: 100,000 small tenants on instance C"
# Instances stop answering for the tenants they hold: A and B are done, and the cores are
# C's. C starts after the seeding, so that it lists the tenants seeded straight into the
# tables; it sweeps every second, for the sweep's figure.
kill "$pid_a" "$pid_b"
"$driver" seed-small --database-url "$TEST_DATABASE_URL"
# An instance on an empty database, for the memory of an instance that knows no tenant.
"${psql_cmd[@]}" -c "CREATE DATABASE bench_empty"
port_empty=$(free_port)
pid_empty=$(env DATABASE_URL="${TEST_DATABASE_URL%/*}/bench_empty" PORT="$port_empty" HOST=127.0.0.1 \
    "$bin/rbac-server" >"$work/empty.log" 2>&1 & echo $!)
on_exit+=("kill $pid_empty 2>/dev/null")
wait_for "http://127.0.0.1:$port_empty/health"
port_c=$(free_port)
pid_c=$(start_instance bench-c "$port_c" RESYNC_INTERVAL_SECS=1)
on_exit+=("kill $pid_c 2>/dev/null")
c="http://127.0.0.1:$port_c"
wait_for "$c/health"
sleep 2
rss_empty=$(anon_kib "$pid_empty")
kill "$pid_empty"
rss_c_known=$(anon_kib "$pid_c")
small_load=$("$driver" load-all --target "$c")
sleep 1
rss_c_loaded=$(anon_kib "$pid_c")
json_field() { grep -o "\"$2\":[0-9]*" "$1" | head -1 | cut -d: -f2; }
curl -sf "$c/cache-stats" >"$work/stats-c.json"
small_estimated=$(json_field "$work/stats-c.json" cache_bytes)
small_held=$(json_field "$work/stats-c.json" tenants_cached)
log "many tenants: checks across all of them over HTTP, 3 rounds of ${seconds}s"
"$driver" requests-small >"$work/requests-small.jsonl"
"$driver" verify --target "$c" --requests "$work/requests-small.jsonl"
wrk -t"$threads" -c"$connections" -d2s -s scripts/bench/check.lua "$c" -- "$work/requests-small.jsonl" >/dev/null
for round in 1 2 3; do
    wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s scripts/bench/check.lua "$c" \
        -- "$work/requests-small.jsonl" >"$work/wrk-small-$round.txt"
done
small_rps=$(for r in 1 2 3; do wrk_rps "$work/wrk-small-$r.txt"; echo; done | median)
# The sweep's store query with nothing changing, over 20 s of sweeps once the rounds above
# have had every pooled connection prepare it.
resync_sum() { curl -sf "$c/metrics" | awk -v k="rbac_resync_query_seconds_$1" '$1 == k {print $2}'; }
sweep_sum_1=$(resync_sum sum)
sweep_count_1=$(resync_sum count)
sleep 20
sweep_sum_2=$(resync_sum sum)
sweep_count_2=$(resync_sum count)
sweep_ms=$(calc "($sweep_sum_2 - $sweep_sum_1) * 1000 / ($sweep_count_2 - $sweep_count_1)")
sweeps_timed=$(awk -v a="$sweep_count_1" -v b="$sweep_count_2" 'BEGIN { printf "%d", b - a }')
# Of which PostgreSQL itself, planning and execution, without round trips or the pool's check
# of the connection: the statement of PgStore::changed_since from the current position, 20
# times in one session (the first ones warm its caches), the median of the last 15.
xmin=$("${psql_cmd[@]}" -Atc "SELECT pg_snapshot_xmin(pg_current_snapshot())")
for _ in $(seq 1 20); do
    echo "EXPLAIN ANALYZE SELECT NULL::text, NULL::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
        NOT EXISTS (SELECT 1 FROM changelog_pruned WHERE xid >= '$xmin'::xid8)
        UNION ALL SELECT t.name, t.revision, NULL, NULL FROM tenants t
        WHERE t.name IN (SELECT c.tenant FROM changelog c WHERE c.xid >= '$xmin'::xid8);"
done | "${psql_cmd[@]}" -At >"$work/sweep-explain.txt"
sweep_pg_ms=$(awk '/^Planning Time/ { p = $3 } /^Execution Time/ { print p + $3 }' "$work/sweep-explain.txt" \
    | tail -15 | median)
log "many tenants: the same checks in process"
small_in_process=$("$driver" in-process --database-url "$TEST_DATABASE_URL")
log "many tenants: a flood of 1,000,000 made-up tenant names against C"
rss_flood_before=$(anon_kib "$pid_c")
flooded=0
flood_run=0
flood_started=$(date +%s.%N)
while [ "$flooded" -lt 1000000 ]; do
    flood_run=$((flood_run + 1))
    wrk -t"$threads" -c"$connections" -d5s -s scripts/bench/flood.lua "$c" -- "$flood_run" \
        >"$work/flood-$flood_run.txt"
    flooded=$((flooded + $(awk '/requests in/ {print $1}' "$work/flood-$flood_run.txt")))
done
flood_seconds=$(calc "$(date +%s.%N) - $flood_started")
sleep 1
rss_flood_after=$(anon_kib "$pid_c")
curl -sf "$c/cache-stats" >"$work/stats-flood.json"
flood_held=$(json_field "$work/stats-flood.json" tenants_cached)
flood_unknown=$(json_field "$work/stats-flood.json" unknown_tenant_reads)

log "in-process (criterion)"
cargo bench --locked --bench policy -- --output-format bencher 2>/dev/null | grep '^test ' >"$work/criterion.txt"
ns() { awk -v n="$1" '$2 == n {gsub(/,/, "", $5); print $5}' "$work/criterion.txt"; }
checks_per_s() { awk -v ns="$(ns "$1")" 'BEGIN { printf "%.0f", 4096 * 1e9 / ns }'; }
check_standard=$(checks_per_s check/standard)
check_large=$(checks_per_s check/large)
check_nested=$(checks_per_s check/standard_nested_4_deep)
load_large_ms=$(calc "$(ns load/large) / 1000000")
apply_large_us=$(calc "$(ns apply_one_change/large) / 1000")
nest_large_us=$(calc "$(ns apply_one_change/large_nest) / 1000")
unnest_large_us=$(calc "$(ns apply_one_change/large_unnest) / 1000")
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
| checks through /check-access/batch, 100 a request (median of $rounds, by turns with single checks) | $batch_checks checks/s (p50 $(median_of batch p50_of) ms, p99 $(median_of batch p99_of) ms a request) | >= 1000000 |
| the same, single checks on /check-access | $single_checks checks/s | |
| ratio batch / single checks per second | $(ratio "$batch_checks" "$single_checks") (of each round: ${batch_ratios% }) | >= 10 |
| in-process check, standard tenant (1 core) | $check_standard checks/s | >= 5000000 |
| in-process check, large tenant (1 core) | $check_large checks/s | >= 5000000 |
| in-process check, standard tenant with every user 4 nestings below the permissions (1 core) | $check_nested checks/s | >= 5000000 |
| build the large tenant from its rows (in process) | $(printf '%.0f' "$load_large_ms") ms | |
| apply one change to the large tenant (in process) | $(printf '%.1f' "$apply_large_us") us | |
| nest, and unnest, one group of the large tenant in another (in process) | $(printf '%.1f' "$nest_large_us") us, $(printf '%.1f' "$unnest_large_us") us | |
| first page of 100, large tenant (in process): groups, a group's permissions, a group's members | $(printf '%.1f' "$(page_us groups)") us, $(printf '%.1f' "$(page_us group_permissions)") us, $(printf '%.0f' "$(page_us group_members)") us | |
| large tenant first load from PostgreSQL (over HTTP) | $(printf '%.2f' "$load_seconds") s | <= 2 s |
| RSS per assignment, large tenant | $(printf '%.0f' "$bytes_per_assignment") bytes ($(( (rss_after - rss_before) / 1024 )) MiB for 1,000,000) | <= 150 bytes |
| RSS of instance A before and after the HTTP rounds ($rbac_requests million checks timed, warm-ups besides) | $(( rss_http_before / 1024 )) MiB, $(( rss_http_after / 1024 )) MiB | |
| propagation A -> B, standard tenant (200 trials) | p50 $(field "$prop_standard" p50_ms) ms, p99 $(field "$prop_standard" p99_ms) ms | <= 1 ms, <= 5 ms |
| propagation A -> B, large tenant (200 trials) | p50 $(field "$prop_large" p50_ms) ms, p99 $(field "$prop_large" p99_ms) ms | p99 <= 10 ms |
| watch: a write on A to its event on a watcher of B, after A's answer (200 trials) | p50 $(field "$watch_prop" p50_ms) ms, p99 $(field "$watch_prop" p99_ms) ms | <= 1 ms, <= 5 ms |
| watch: anonymous memory of 1,000 idle watch streams on B | $(( (rss_watched - rss_unwatched) / 1024 )) MiB | <= 20 MB |
| watch: check-access on B with the 1,000 idle watchers open, and without (median of $watch_rounds each, by turns) | $watched_rps req/s, $unwatched_rps req/s (ratio $(ratio "$watched_rps" "$unwatched_rps"); of each round: ${watch_ratios% }) | |
| changing writes over 100 tenants (16 clients) | $(field "$writes" per_second) writes/s | |
| export the large tenant from B (GET /tenant-policy, JSON): time, size, B's peak memory above its memory before | $(printf '%.2f' "$export_seconds") s, $(printf '%.1f' "$export_mb") MB, $(( (export_peak - rss_export_before) / 1024 )) MiB | |
| apply that document to an empty tenant on A (PUT /tenant-policy: $applied_changes changes, one write into PostgreSQL) | $(printf '%.1f' "$apply_seconds") s ($(calc "$applied_changes / $apply_seconds" | xargs printf '%.0f') changes/s) | |
| apply it again, nothing to change | $(printf '%.2f' "$reapply_seconds") s | |
| changes through /write, 1,000 a request (4 clients) | $(field "$bulk_writes" per_second) changes/s ($(ratio "$(field "$bulk_writes" per_second)" "$pgbench_tps") of the pgbench inserts) | >= 50000 |
| pgbench single-row insert (8 clients) | $pgbench_tps tps | |
| ratio writes / pgbench | $(ratio "$(field "$writes" per_second)" "$pgbench_tps") | >= 0.50 |
| rbac_write called straight from pgbench (8 clients) | $pgbench_write_tps tps ($(ratio "$pgbench_write_tps" "$pgbench_tps") of the inserts) | |
| many tenants: anonymous RSS per small tenant held (2 groups, 2 permissions, 4 assignments; 100,000 loaded) | $(calc "($rss_c_loaded - $rss_c_known) * 1024 / 100000" | xargs printf '%.0f') bytes; the cache's estimate $(calc "$small_estimated / $small_held" | xargs printf '%.0f') bytes | <= 4096 bytes |
| many tenants: anonymous RSS for knowing 100,000 tenants, none held, beside an instance on an empty database | $(calc "($rss_c_known - $rss_empty) * 1024 / 100000" | xargs printf '%.0f') bytes per tenant ($(( (rss_c_known - rss_empty) / 1024 )) MiB) | |
| many tenants: first loads over HTTP (32 clients) | $(field "$small_load" per_second) tenants/s | |
| many tenants: store time of a sweep with nothing changed: as the instance waits for it (mean of $sweeps_timed, round trips included), and in PostgreSQL (median of 15, planning included) | $(printf '%.3f' "$sweep_ms") ms, $(printf '%.3f' "$sweep_pg_ms") ms | <= 1 ms |
| many tenants: check-access across all 100,000 over HTTP (median of 3) | $small_rps req/s | |
| many tenants: check across all 100,000 in process (1 core) | $(field "$small_in_process" checks_per_second) checks/s | |
| many tenants: flood of $flooded made-up tenant names (wrk, 5 s rounds, $(printf '%.0f' "$flood_seconds") s in all) | anonymous RSS $(( rss_flood_before / 1024 )) MiB before, $(( rss_flood_after / 1024 )) MiB after; tenants held $flood_held; $flood_unknown reads of unknown tenants | growth <= 10 MB |
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
