"""Run every benchmark in bench/ (files named bench_*.py), one after the other.

Each benchmark measures its own baseline in the same run and prints ratios against
it. Results also go to bench/results/<name>.json. Usage: ``make bench`` or
``python bench/run_all.py [name-substring ...]``.
"""

import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    """Run the selected benchmarks and return non-zero if any failed."""
    wanted = sys.argv[1:]
    failed = []
    for path in sorted(glob.glob(os.path.join(HERE, 'bench_*.py'))):
        name = os.path.basename(path)
        if wanted and not any(w in name for w in wanted):
            continue
        print(f'\n=== {name}', flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, path])
        print(f'=== {name}: exit {rc} in {time.monotonic() - start:.0f} s', flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print('failed: ' + ', '.join(failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
