#!/usr/bin/env bash
# End-to-end benchmark of the release binary on generated traffic, one core, with the truth
# score, next to the speed of merely reading the file (and Suricata's, when it is installed).
#
#   benches/e2e.sh [PACKETS] [INDICATORS] [SEED]      (defaults: 3000000 1000000 1 = workload W1)
#
# Needs ../shared/bench (gen_traffic.py, score.py). The workload is cached in $WORK (/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS=${1:-3000000}
INDICATORS=${2:-1000000}
SEED=${3:-1}
WORK=${WORK:-/tmp}
W="$WORK/iocmatch-e2e-$PACKETS-$INDICATORS-$SEED"
BENCH=../shared/bench
if [ ! -f "$W.pcap" ]; then
    echo "generating $W (about $((PACKETS / 25000)) s)"
    python3 "$BENCH/gen_traffic.py" --out "$W" --packets "$PACKETS" --indicators "$INDICATORS" --seed "$SEED" >/dev/null
fi
cargo build --release -q
BIN=target/release/iocmatch
SIZE=$(stat -L -c %s "$W.pcap")
cat "$W.pcap" >/dev/null # page cache
t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
read -r CAT_S _ < <(t taskset -c 0 cat "$W.pcap")
$BIN indicators compile "$W.indicators/indicators.csv" -o "$W.iocset" 2>/dev/null
run() { # label, indicator file
    local out err
    err=$(mktemp)
    /usr/bin/time -f "%e %M" taskset -c 0 $BIN scan -q --no-default-set --indicators "$2" -o "$W.alerts" "$W.pcap" 2>"$err" || true
    read -r secs rss < <(tail -1 "$err")
    rm -f "$err"
    local score
    score=$(python3 "$BENCH/score.py" "$W.truth.jsonl" "$W.alerts" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("recall %s precision %s" % (d["recall"], d["precision"]))')
    awk -v l="$1" -v s="$secs" -v b="$SIZE" -v r="$rss" -v p="$PACKETS" -v sc="$score" \
        'BEGIN { printf "%-26s %6.2f s  %7.0f MB/s  %5.2f Mpkt/s  peak RSS %4.0f MB  %s\n", l, s, b/s/1e6, p/s/1e6, r/1024, sc }'
}
echo "workload: $W.pcap ($((SIZE / 1000000)) MB, $PACKETS packets, $INDICATORS indicators), one core"
awk -v s="$CAT_S" -v b="$SIZE" 'BEGIN { printf "%-26s %6.2f s  %7.0f MB/s\n", "cat (reading only)", s, b/s/1e6 }'
run "iocmatch, CSV set" "$W.indicators/indicators.csv"
run "iocmatch, compiled set" "$W.iocset"
if command -v suricata >/dev/null 2>&1 && [ -x "$BENCH/peers/suricata.sh" ]; then
    echo "suricata: see $BENCH/peers/suricata.sh (same set as iprep + datasets)"
fi
