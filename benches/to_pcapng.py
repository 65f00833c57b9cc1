#!/usr/bin/env python3
"""Rewrites a classic pcap as pcapng, as dumpcap writes one: a section header, one interface
(microsecond timestamps), and an Enhanced Packet Block without options per record. With
--flags, every packet block carries a direction flag (the epb_flags option), as some
converters write it (Microsoft's etl2pcapng, ptcpdump).

    python3 benches/to_pcapng.py [--flags] IN.pcap OUT.pcapng

Used by `PCAPNG=1 benches/e2e.sh` to time the same packets in both formats."""
import struct
import sys


def block(ty, body):
    pad = (-len(body)) % 4
    total = 12 + len(body) + pad
    return struct.pack("<II", ty, total) + body + b"\0" * pad + struct.pack("<I", total)


# epb_flags (code 2, 4 bytes): inbound; then the end of options.
FLAGS = struct.pack("<HHIHH", 2, 4, 1, 0, 0)


def main(src_path, dst_path, flags=False):
    with open(src_path, "rb") as src, open(dst_path, "wb") as out:
        magic, _, _, _, _, snaplen, linktype = struct.unpack("<IHHiIII", src.read(24))
        if magic not in (0xA1B2C3D4, 0xA1B23C4D):
            sys.exit("%s: not a little-endian classic pcap" % src_path)
        nanos = magic == 0xA1B23C4D
        out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        out.write(block(1, struct.pack("<HHI", linktype, 0, snaplen)))
        pending = []
        while True:
            head = src.read(16)
            if len(head) < 16:
                break
            sec, frac, caplen, origlen = struct.unpack("<IIII", head)
            data = src.read(caplen)
            ts = sec * 1_000_000 + (frac // 1000 if nanos else frac)
            body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, caplen, origlen) + data
            if flags:
                body += b"\0" * ((-len(body)) % 4) + FLAGS
            pending.append(block(6, body))
            if len(pending) >= 10_000:
                out.write(b"".join(pending))
                pending = []
        out.write(b"".join(pending))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--flags"]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], flags="--flags" in sys.argv[1:])
