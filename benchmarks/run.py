"""Run every benchmark and write benchmarks/results.json; used by `nox -s bench`.

Each script (``bench_core.py``, and ``bench_redis.py``, ``bench_partitions.py``,
``bench_memory.py``, ``bench_pool.py``, ``bench_cluster.py`` and ``bench_dashboard.py``
when present) runs in its own process with ``--json PATH`` (and ``--quick`` with
``--quick``) and writes a JSON list of entries (see ``_common.Entry``); the lists are
merged into ``benchmarks/results.json`` and printed as one table. Full mode is the
default; ``--quick`` runs the same figures at smaller sizes. The exit status is non-zero
when a script failed (a broken benchmark), not when a target is missed.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import Entry, failed, format_table, read_json, write_json

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_core.py",
    "bench_redis.py",
    "bench_partitions.py",
    "bench_memory.py",
    "bench_pool.py",
    "bench_cluster.py",
    "bench_dashboard.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, same figures (under 2 minutes)"
    )
    args = parser.parse_args()
    entries: list[Entry] = []
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for script in SCRIPTS:
            path = HERE / script
            if not path.exists():
                continue
            out = Path(tmp) / f"{path.stem}.json"
            command = [sys.executable, str(path), "--json", str(out)]
            if args.quick:
                command.append("--quick")
            print(f"$ {' '.join(command[1:])}", flush=True)
            # Scripts report progress on stderr; their own stdout table is replaced by the
            # combined one printed at the end.
            code = subprocess.run(command, check=False, stdout=subprocess.DEVNULL).returncode
            if out.exists():
                entries.extend(read_json(out))
            if code != 0:
                print(f"{script} exited with status {code}", file=sys.stderr)
                status = 1
    write_json(HERE / "results.json", entries)
    print(format_table(entries))
    broken = failed(entries)
    missed = [e for e in entries if e.met is False]
    print(f"\n{len(missed)} target(s) missed, {len(broken)} benchmark(s) failed")
    print(f"wrote {HERE / 'results.json'}")
    return 1 if status or broken else 0


if __name__ == "__main__":
    sys.exit(main())
