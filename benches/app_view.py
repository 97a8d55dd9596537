#!/usr/bin/env python3
"""What the application-faithful view costs a healthy one-shot (the "See what the application
sees" issue: within 1.2x of the wall time before it). Runs two vpce-probe binaries alternately
inside the VPC lab's instance namespace, in the lab as built (private subnet: STS and the
canary time out, so a run is about one --timeout) and with the nat-gateway fault (every endpoint
answers, so a run is its slowest chain), and prints the medians and the ratio as a Markdown table.

Usage (as root, lab deps installed, both binaries built with the same features):
    python3 benches/app_view.py --before OLD_BINARY --after NEW_BINARY [--runs 15]
The lab is brought up and torn down by this script (lab/lab.sh; the machine-wide lab lock is taken).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB = ["bash", str(REPO / "lab" / "lab.sh")]


def timed_probe(binary: str) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run(LAB + ["probe"], env={"VPL_PROBE": binary, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                          capture_output=True, text=True, timeout=120)
    return time.monotonic() - started, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    subprocess.run(LAB + ["up"], check=True)
    rows = []
    try:
        for state, faults in (("as built: private subnet", []), ("nat-gateway: every endpoint answers", ["nat-gateway"])):
            subprocess.run(LAB + ["reset"], check=True)
            if faults:
                subprocess.run(LAB + ["apply", *faults], check=True)
            times: dict[str, list[float]] = {"before": [], "after": []}
            exits: dict[str, set[int]] = {"before": set(), "after": set()}
            for name in ("before", "after"):  # warm-up, not counted
                timed_probe(getattr(args, name))
            for _ in range(args.runs):
                for name in ("before", "after"):
                    seconds, code = timed_probe(getattr(args, name))
                    times[name].append(seconds)
                    exits[name].add(code)
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            rows.append((state, b, a, a / b, sorted(exits["before"]), sorted(exits["after"])))
    finally:
        subprocess.run(LAB + ["down"], check=False)
    print(f"| lab state | before (median of {args.runs}) | after | ratio | exits before / after |")
    print("|---|---|---|---|---|")
    for state, b, a, ratio, eb, ea in rows:
        print(f"| {state} | {b * 1000:.0f} ms | {a * 1000:.0f} ms | {ratio:.2f}x | {eb} / {ea} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
