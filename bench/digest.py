"""What verifying weights costs: SHA-256 throughput of the replica's own verification code.

Writes a few weight-sized files of random bytes into a temporary folder, then times
`modeldeploy_serving.digests.verify_dir` (the code every replica runs before its engine loads):
one file alone (one stream), and all files together (HASH_THREADS threads). The files are read
once before timing, so the figures are hashing from the page cache (the best case, and the case
right after a download); `--cold` also drops them from the page cache first (root only), which
adds the disk's read speed. Results: bench/results/digest.json.

    python bench/digest.py               # 4 files of 512 MiB
    python bench/digest.py --files 2 --mib 256 --out /tmp/digest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modeldeploy_serving.digests import HASH_THREADS, digest_dir, verify_dir  # noqa: E402

MIB = 1024 * 1024


def write_files(folder: Path, count: int, mib: int) -> None:
    for index in range(count):
        with (folder / f"model-{index:05d}-of-{count:05d}.safetensors").open("wb") as out:
            for _ in range(mib):
                out.write(os.urandom(MIB))


def drop_page_cache(folder: Path) -> bool:
    """Evict the files from the page cache (POSIX_FADV_DONTNEED); False if not possible."""
    try:
        for path in folder.iterdir():
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
                os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        return False
    return True


def timed(folder: Path, expected: dict[str, str], threads: int, cold: bool) -> float:
    if cold:
        drop_page_cache(folder)
    started = time.perf_counter()
    verify_dir(folder, expected, threads=threads)
    return time.perf_counter() - started


def measure(count: int, mib: int, rounds: int, cold: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="md-digest-") as scratch:
        folder = Path(scratch)
        write_files(folder, count, mib)
        expected = digest_dir(folder)  # also warms the page cache
        one = next(iter(sorted(expected)))
        single = {one: expected[one]}
        results: dict[str, Any] = {}
        for label, files, threads in (
            ("one_stream", single, 1),
            (f"{HASH_THREADS}_threads", expected, HASH_THREADS),
        ):
            total_bytes = sum((folder / name).stat().st_size for name in files)
            # verify_dir insists every weight file is listed: one file is timed in a folder of
            # its own.
            scope = folder if len(files) == len(expected) else _alone(folder, one)
            times = [timed(scope, files, threads, cold) for _ in range(rounds)]
            if scope != folder:
                _restore(folder, one)
            median = statistics.median(times)
            results[label] = {
                "files": len(files),
                "bytes": total_bytes,
                "seconds": [round(t, 3) for t in times],
                "median_seconds": round(median, 3),
                "gb_per_s": round(total_bytes / median / 1e9, 3),
                "seconds_per_gb": round(median / (total_bytes / 1e9), 3),
            }
        return results


def _alone(folder: Path, name: str) -> Path:
    solo = folder / ".solo"
    solo.mkdir(exist_ok=True)
    (folder / name).rename(solo / name)
    return solo


def _restore(folder: Path, name: str) -> None:
    solo = folder / ".solo"
    (solo / name).rename(folder / name)
    solo.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="number of weight files")
    parser.add_argument("--mib", type=int, default=512, help="size of each file in MiB")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case (median)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "digest.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = measure(args.files, args.mib, args.rounds, args.cold)
    report = {
        "what": "SHA-256 verification of weight files by modeldeploy_serving.digests.verify_dir",
        "page_cache": "cold" if args.cold else "warm",
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            # Other work on the machine while measuring (1-minute load average, before/after).
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for label, figures in results.items():
        print(
            f"{label}: {figures['bytes'] / 1e9:.2f} GB in {figures['median_seconds']:.2f} s = "
            f"{figures['gb_per_s']:.2f} GB/s ({figures['seconds_per_gb']:.2f} s per GB)"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
