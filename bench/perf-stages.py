#!/usr/bin/env python3
"""Split a server's CPU profile of one push into the stages of the push path.

    python3 bench/perf-stages.py PERF.data [PERF.data ...] [--gb GB]

PERF.data is a `perf record -g` profile of the server process taken over
one push (mcrbench --perf DIR writes one per scenario-1 push). Every sample
is assigned to the first stage whose rule matches its call stack (leaf
first), and each stage is printed as a share of the samples and, with --gb
(the pushed size in GB) and the server's CPU seconds, as CPU seconds per GB.
See bench/README.md ("Where a push's CPU goes").
"""
import re
import subprocess
import sys
from collections import Counter

# (stage, pattern over the whole stack, joined leaf first by ';'). The first
# match wins, so specific leaves (crypto) come before the paths they run in.
RULES = [
    ("SHA-256 (one pass, in distribution's blobWriter)", r"^[^;]*sha256\.block"),
    ("TLS record decryption (AES-GCM)", r"^[^;]*(gcmAes|aes\.|gcm\.)"),
    ("audit / index (SQLite, notifications sink)", r"(cgocall|sqlite|notifications\.\(\*Sink\)|store\.)"),
    ("commit: fsync, rename, links, hash state", r"(do_fsync|ext4_sync_file|file_write_and_wait|\.Sync;|\.fsync|syncDir|PutContent|\.Move;|\.Rename|renameat|Commit;)"),
    ("file write (page cache or O_DIRECT)", r"(ext4_buffered_write_iter|ext4_file_write_iter|ext4_dio|iomap_dio|vfs_write|ksys_pwrite|__x64_sys_pwrite|writeOut|writePieces|filesystem\.\(\*fileWriter\)\.Write|File\)\.WriteAt|File\)\.Write;)"),
    ("socket receive (TCP, copy to user)", r"(tcp_recvmsg|inet_recvmsg|sock_read|__x64_sys_read|ksys_read|net_rx_action|__netif_receive|tcp_v4_rcv|ip_rcv|skb_copy_datagram|_copy_to_iter|netFD\)\.Read|handle_softirqs|do_softirq)"),
    ("Go copies (memmove) on the body path", r"^[^;]*runtime\.memmove"),
    ("HTTP, /v2 edge, auth, distribution handlers", r"(ServeHTTP|net/http\.|crypto/tls\.|distribution/v3|mcr/)"),
    ("scheduling, runtime (netpoll, sysmon, GC, context switches)", r"."),
]


def samples(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,ip,sym", "--no-inline"],
                         capture_output=True, text=True, check=True).stdout
    stack = []
    for line in out.splitlines():
        if not line.strip():
            if stack:
                yield ";".join(stack)
            stack = []
            continue
        if line[0] in " \t":
            parts = line.split(None, 1)
            sym = parts[1] if len(parts) > 1 else "?"
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym.strip())
            stack.append(sym)
    if stack:
        yield ";".join(stack)


def main():
    args = sys.argv[1:]
    gb = None
    if "--gb" in args:
        i = args.index("--gb")
        gb = float(args[i + 1])
        del args[i:i + 2]
    if not args:
        print(__doc__)
        sys.exit(2)
    compiled = [(name, re.compile(rx)) for name, rx in RULES]
    for path in args:
        c = Counter()
        for st in samples(path):
            for name, rx in compiled:
                if rx.search(st):
                    c[name] += 1
                    break
        total = sum(c.values()) or 1
        print(f"{path}: {total} samples")
        for name, _ in RULES:
            print(f"  {100 * c[name] / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
