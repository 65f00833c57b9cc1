#!/usr/bin/env bash
# Flow-log throughput of the release binary, one core, with a large indicator set loaded:
# the project's flow generator rendered as a Zeek conn.log, EVE flow events, AWS VPC, nfdump
# CSV and NetFlow v5 export packets. When nfdump and nfcapd are installed (Debian: nfdump),
# the NetFlow records are also collected by nfcapd and filtered by `nfdump` with `ip in [...]`
# over the same set's addresses, for the ratio.
#
#   benches/flows.sh [FLOWS] [INDICATOR_SET]   (defaults: 2000000, the W1 set from benches/e2e.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-2000000}
SET=${2:-/tmp/iocmatch-e2e-3000000-1000000-1.indicators/indicators.csv}
WORK=${WORK:-/tmp}/iocmatch-flows-$FLOWS
cargo build --release -q --example make_flowlogs
cargo build --release -q
BIN=target/release/iocmatch
[ -f "$WORK/nf5.pcap" ] || target/release/examples/make_flowlogs "$WORK" "$FLOWS" >/dev/null
$BIN indicators compile "$SET" -o "$WORK/set.iocset" 2>/dev/null
t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
echo "indicators: $SET (compiled), plus the generator's own; one core"
# Each input is scanned five times; the run with the median scan part is shown (this machine's
# timings vary by 5-10 % from one minute to the next, at times by far more).
for f in conn.log vpc.log eve.json nfdump.csv nf5.pcap; do
    cat "$WORK/$f" >/dev/null
    runs=()
    for _ in 1 2 3 4 5; do
        err=$(mktemp)
        /usr/bin/time -f "%e %M" taskset -c 0 $BIN scan --no-default-set --indicators "$WORK/set.iocset" \
            --indicators "$WORK/indicators.csv" -o "$WORK/$f.alerts" "$WORK/$f" 2>"$err" || true
        records=$(grep -o '[0-9]* flow-log records' "$err" | cut -d' ' -f1)
        scan=$(grep -o 'in [0-9.]* s' "$err" | head -1 | cut -d' ' -f2)
        read -r secs rss < <(tail -1 "$err")
        rm -f "$err"
        runs+=("$scan $secs $rss $records")
    done
    read -r scan secs rss records < <(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
    awk -v f="$f" -v n="$records" -v s="$secs" -v p="$scan" -v r="$rss" \
        'BEGIN { printf "%-11s %8d records  %5.2f s end to end  %5.2f M rec/s scanning (%.2f s)  peak RSS %4.0f MB\n", f, n, s, n/p/1e6, p, r/1024 }'
done
if command -v nfcapd >/dev/null && command -v nfdump >/dev/null; then
    rm -rf "$WORK/nfcapd" && mkdir -p "$WORK/nfcapd"
    nfcapd -b 127.0.0.1 -p 9995 -w "$WORK/nfcapd" -t 3600 -B 8000000 >/dev/null 2>&1 &
    pid=$!
    sleep 1
    python3 benches/send_netflow.py "$WORK/nf5.pcap" 9995 >/dev/null
    sleep 2
    kill -INT $pid && wait $pid || true
    file=$(ls "$WORK"/nfcapd/nfcapd.* | head -1)
    python3 - "$SET" "$WORK/indicators.csv" >"$WORK/nfdump.filter" <<'PY'
import csv, sys, ipaddress
ips = []
for path in sys.argv[1:]:
    for row in csv.DictReader(open(path)):
        v = (row.get("indicator") or "").strip()
        try:
            ipaddress.ip_address(v)
            ips.append(v)
        except ValueError:
            pass
print("ip in [ " + " ".join(ips) + " ]")
PY
    read -r s1 _ < <(t taskset -c 0 nfdump -r "$file" -q -o csv 'ip 203.0.113.10')
    read -r s2 rss2 < <(t taskset -c 0 nfdump -r "$file" -q -o csv -f "$WORK/nfdump.filter")
    echo "nfdump $(nfdump -V | cut -d' ' -f2-): the same NetFlow records from nfcapd's file"
    echo "  one-address filter (reading alone): $s1 s;  ip in [every address of the set]: $s2 s, peak RSS $((rss2 / 1024)) MB"
    echo "  (nfdump has no list form for networks: the set's CIDRs are not in its filter; iocmatch matches them too)"
fi
