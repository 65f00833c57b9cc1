#!/usr/bin/env bash
# Throughput over indicator-set sizes on the same traffic (W1 from benches/e2e.sh), one core:
# 10 k (the first rows of W1's set), 1 M (W1's set) and 10 M (W1's set plus 9 M indicators that
# cannot occur in the traffic: addresses in 240.0.0.0/4 and names under .invalid, so the alert
# volume stays the same and only the set grows). Start-up is a scan of a one-packet capture.
#
#   benches/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WORK:-/tmp}/iocmatch-e2e-3000000-1000000-1
[ -f "$W.pcap" ] || { echo "run benches/e2e.sh first (it generates $W.pcap)"; exit 1; }
cargo build --release -q
BIN=target/release/iocmatch
S=${WORK:-/tmp}/iocmatch-scaling
mkdir -p "$S"
CSV="$W.indicators/indicators.csv"
[ -f "$S/10k.csv" ] || head -10001 "$CSV" > "$S/10k.csv"
[ -f "$S/1m.csv" ] || cp "$CSV" "$S/1m.csv"
if [ ! -f "$S/10m.csv" ]; then
    python3 - "$CSV" "$S/10m.csv" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
with open(out, "w") as o:
    o.write(open(src).read())
    for i in range(4_500_000):
        o.write(f"{240 + (i >> 24) % 16}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255},ipv4\n")
    for i in range(4_500_000):
        o.write(f"h{i:x}.pad{i % 997}.invalid,domain\n")
PY
fi
# Compiled again whenever the binary is newer (the format may have changed).
for n in 10k 1m 10m; do
    if [ ! "$S/$n.iocset" -nt "$BIN" ]; then
        /usr/bin/time -f "compiled $n in %e s, peak RSS %M KB" $BIN indicators compile "$S/$n.csv" -o "$S/$n.iocset" 2>&1 | tail -1
    fi
done
cat "$W.pcap" >/dev/null
SIZE=$(stat -L -c %s "$W.pcap")
printf "%-12s %10s %16s %12s %10s\n" indicators start-up "scan part" "peak RSS" alerts
for n in 10k 1m 10m; do
    start=$( { /usr/bin/time -f "%e" taskset -c 0 $BIN scan -q --no-default-set --indicators "$S/$n.iocset" -o /dev/null pcaps/clean.pcap; } 2>&1 | tail -1)
    err=$(mktemp)
    /usr/bin/time -f "%M" taskset -c 0 $BIN scan --no-default-set --indicators "$S/$n.iocset" -o "$S/$n.alerts" "$W.pcap" 2>"$err" || true
    scan=$(grep -o 'in [0-9.]* s' "$err" | head -1 | cut -d' ' -f2)
    alerts=$(grep -o 'alerts *[0-9]*' "$err" | head -1 | tr -s ' ' | cut -d' ' -f2)
    rss=$(tail -1 "$err")
    rm -f "$err"
    awk -v n="$n" -v st="$start" -v x="$scan" -v b="$SIZE" -v r="$rss" -v a="$alerts" \
        'BEGIN { printf "%-12s %8.2f s  %5.2f s %5.0f MB/s  %7.0f MB %10s\n", n, st, x, b/x/1e6, r/1024, a }'
done
