#!/usr/bin/env bash
# Soak test of the live sensor: `watch` on one end of a veth pair in a network namespace of its
# own, ordinary UDP plus a flood of SYNs from random spoofed sources sent from the other end,
# for SECS seconds; prints the sensor's counters and its peak memory at the end.
# Root only; traffic stays inside the two namespaces this script creates.
#
#   benches/watch-soak.sh [SECS] [MAX_CONNECTIONS]      (defaults: 600 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
MAXC=${2:-100000}
cargo build --release -q --features live
BIN=$PWD/target/release/iocmatch
S=iocsoak-s; P=iocsoak-p
cleanup() { ip netns del $S 2>/dev/null || true; ip netns del $P 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $S; ip netns add $P
ip link add soaks netns $S type veth peer name soakp netns $P
ip -n $S addr add 198.18.60.1/24 dev soaks; ip -n $P addr add 198.18.60.2/24 dev soakp
ip -n $S link set soaks up; ip -n $P link set soakp up; ip -n $S link set lo up; ip -n $P link set lo up
FEED=$(mktemp); printf '198.18.60.2\n' >"$FEED"  # the UDP sender: the flood itself is not flagged
LOG=$(mktemp); OUT=$(mktemp)
ip netns exec $S "$BIN" watch -i soaks --no-default-set --indicators "$FEED" -o "$OUT" --workers 1 \
    --max-connections "$MAXC" --stats-interval 60 2>"$LOG" &
WPID=$!
sleep 1.5
# The sensor's memory once a minute: it must stay flat.
( while kill -0 $WPID 2>/dev/null; do
    sleep 60
    P_=$(pgrep -n -f "iocmatch watch -i soaks") && echo "  t+$((SECONDS))s sensor $(grep VmRSS /proc/$P_/status 2>/dev/null)"
  done ) &
SAMPLER=$!
ip netns exec $P python3 - "$SECS" <<'PY'
import os, random, socket, struct, sys, time
secs = float(sys.argv[1])
dst = socket.inet_aton("198.18.60.1")
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
udp = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
rnd = random.Random(1)
def syn():
    src = struct.pack("!I", rnd.getrandbits(32) | 0x01000000)
    tcp = struct.pack("!HHIIBBHHH", rnd.getrandbits(16), 443, rnd.getrandbits(32), 0, 0x50, 0x02, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
    return ip + tcp
n_syn = n_udp = 0
end = time.time() + secs
while time.time() < end:
    for _ in range(200):
        raw.sendto(syn(), ("198.18.60.1", 0))
    n_syn += 200
    for i, s in enumerate(udp):
        s.sendto(b"x" * 64, ("198.18.60.1", 2000 + i))
    n_udp += len(udp)
print(f"sent {n_syn} spoofed SYNs and {n_udp} UDP datagrams in {secs:.0f} s")
PY
sleep 1
HWM=$(grep VmHWM /proc/$(pgrep -n -f "iocmatch watch -i soaks")/status 2>/dev/null || echo "VmHWM: ?")
RSS=$(grep VmRSS /proc/$(pgrep -n -f "iocmatch watch -i soaks")/status 2>/dev/null || echo "VmRSS: ?")
kill $SAMPLER 2>/dev/null || true
kill -TERM $WPID; wait $WPID || true
echo "sensor memory at the end: $RSS; peak: $HWM"
grep -E "stats|evict|drop" "$LOG" | tail -3
rm -f "$FEED" "$LOG" "$OUT"
