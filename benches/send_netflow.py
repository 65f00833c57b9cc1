#!/usr/bin/env python3
# Replays the UDP payloads of a capture of NetFlow export packets (Ethernet/IPv4/UDP) to
# 127.0.0.1:PORT, paced, for nfcapd in benches/flows.sh.
#   send_netflow.py CAPTURE PORT
import socket, struct, sys, time
data = open(sys.argv[1], 'rb').read()
magic = struct.unpack('<I', data[:4])[0]
assert magic == 0xa1b2c3d4, hex(magic)
off = 24; n = 0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8<<20)
while off + 16 <= len(data):
    ts, tu, incl, orig = struct.unpack('<IIII', data[off:off+16]); off += 16
    frame = data[off:off+incl]; off += incl
    ihl = (frame[14] & 15) * 4
    payload = frame[14+ihl+8:]
    s.sendto(payload, ('127.0.0.1', int(sys.argv[2])))
    n += 1
    if n % 200 == 0: time.sleep(0.002)
print(n, "datagrams")
