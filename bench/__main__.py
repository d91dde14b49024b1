"""`python -m bench`: every benchmark in turn, each printing its Markdown table (what docs/benchmarks.md records)."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("frame_pipeline", "bus_throughput", "backtest_engines", "rules", "http_reads")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n## bench.{name}\n", flush=True)
        # One process each: a benchmark's warm caches and memory never colour the next one's figures.
        if subprocess.call([sys.executable, "-m", f"bench.{name}", *sys.argv[1:]]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
