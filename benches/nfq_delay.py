#!/usr/bin/env python3
"""Delays every packet of one netfilter queue by a fixed time, then accepts it.

The lab's kernel has no netem (lab/README.md, "Limits"), so a known latency is injected this way instead:
an iptables rule sends the packets to NFQUEUE, this program holds each one DELAY_MS and gives
the verdict ACCEPT, in arrival order. Pure standard library (raw nfnetlink), no packet payload
is copied (only the metadata).

    nfq_delay.py QUEUE_NUM DELAY_MS [READY_FILE]

Run it in the namespace of the iptables rule (`ip netns exec vpl-rtr ...`), with
`-j NFQUEUE --queue-num N --queue-bypass` so packets pass undelayed if it is not running.
It stops on SIGTERM/SIGINT (unbinding the queue).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2


def nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    pad = (4 - length % 4) % 4
    return struct.pack("=HH", length, kind) + payload + b"\0" * pad


def message(msg_type: int, queue: int, attrs: bytes, seq: int) -> bytes:
    # nfgenmsg: family, version, res_id (queue number, big endian)
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                       NLM_F_REQUEST, seq, 0) + body


def main() -> int:
    queue = int(sys.argv[1])
    delay = float(sys.argv[2]) / 1000.0
    ready = sys.argv[3] if len(sys.argv) > 3 else None
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    seq = 1
    sock.send(message(NFQNL_MSG_CONFIG, queue,
                      nla(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)), seq))
    seq += 1
    sock.send(message(NFQNL_MSG_CONFIG, queue,
                      nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)), seq))
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if ready:
        with open(ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    pending: collections.deque[tuple[float, int]] = collections.deque()
    count = 0
    while not stop:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, packet_id = pending.popleft()
            seq += 1
            sock.send(message(NFQNL_MSG_VERDICT, queue,
                              nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)), seq))
        wait = max(0.0, pending[0][0] - time.monotonic()) if pending else 0.5
        try:
            readable, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if not readable:
            continue
        data = sock.recv(65536)
        arrived = time.monotonic()
        offset = 0
        while offset + 16 <= len(data):
            length, msg_type, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                break
            if msg_type == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", data, offset + 16)
                if err != 0:
                    print(f"nfq_delay: netlink error {err}", file=sys.stderr)
                    return 1
            elif msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                pos = offset + 16 + 4  # nlmsghdr + nfgenmsg
                end = offset + length
                while pos + 4 <= end:
                    alen, akind = struct.unpack_from("=HH", data, pos)
                    if alen < 4:
                        break
                    if (akind & 0x7FFF) == NFQA_PACKET_HDR:
                        (packet_id,) = struct.unpack_from("!I", data, pos + 4)
                        pending.append((arrived + delay, packet_id))
                        count += 1
                    pos += (alen + 3) & ~3
            offset += (length + 3) & ~3
    # Let what is held go, then unbind.
    for _, packet_id in pending:
        seq += 1
        sock.send(message(NFQNL_MSG_VERDICT, queue,
                          nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)), seq))
    sock.send(message(NFQNL_MSG_CONFIG, queue,
                      nla(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0)), seq + 1))
    print(f"nfq_delay: {count} packet(s) delayed {delay * 1000:.1f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
