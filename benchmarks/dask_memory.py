"""Larger than memory with fastcnn.dask: the computing process's peak RSS, measured.

Two pipelines, each over 4 GiB of float32 input built lazily with ``da.random``:
a 3x3 convolution (16 -> 16 channels, padding 1) -> 2x2 max pooling -> ``.sum()``,

- ``batch``: 1024 images of 16 x 256 x 256, chunked along the batch;
- ``image``: one image of 16 x 8192 x 8192, chunked in space.

Each case runs in a fresh subprocess on the threaded scheduler (one thread per core,
fastcnn at one thread inside each) and reports ``ru_maxrss``: the whole input never
exists at once, so the peak stays near a few chunks per thread. Run by hand::

    python benchmarks/dask_memory.py            # both cases, one subprocess each
    python benchmarks/dask_memory.py --case image --backend im2col
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GIB = 2**30
#: (shape, chunks) per case: 4 GiB of float32 each. A spatial halo reaches into the next
#: row of chunks, so about two rows of chunks are held at once (2 x 256 rows x 8192 x 16
#: channels x 4 bytes = 256 MiB here): for an image, short chunks keep that small.
CASES = {
    "batch": ((1024, 16, 256, 256), (8, 16, 256, 256)),
    "image": ((1, 16, 8192, 8192), (1, 16, 256, 512)),
}


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(case: str, backend: str, threads: int) -> dict[str, object]:
    import dask
    import dask.array as da
    import numpy as np

    import fastcnn
    import fastcnn.dask as fd

    shape, chunks = CASES[case]
    fastcnn.set_num_threads(1)  # one scheduler thread per core, each running one task
    w = np.random.default_rng(1).standard_normal((16, 16, 3, 3)).astype(np.float32) / 12
    x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32)
    total = fd.max_pool2d(fd.conv2d(x, w, padding=1, backend=backend), 2, backend=backend).sum()
    # Warm up (Numba's cached kernels load on first call) so the baseline includes them.
    small = da.ones((1, 16, 8, 8), dtype=np.float32)
    fd.max_pool2d(fd.conv2d(small, w, padding=1, backend=backend), 2, backend=backend).sum()
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=threads):
        value = float(total.compute())
    seconds = time.perf_counter() - start
    return {
        "case": case,
        "backend": backend,
        "input_GiB": x.nbytes / GIB,
        "chunk_MiB": np.prod(chunks) * 4 / 2**20,
        "tasks": len(total.__dask_graph__()),
        "seconds": round(seconds, 1),
        "baseline_peak_MiB": round(baseline / 2**20),
        "peak_rss_MiB": round(peak_rss_bytes() / 2**20),
        "sum": value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process")
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.backend, args.threads)))
        return
    for case in sorted(CASES):
        cmd = [sys.executable, __file__, "--case", case, "--backend", args.backend]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        verdict = "under" if result["peak_rss_MiB"] < 1024 else "OVER"
        print(json.dumps(result), f"-> peak {verdict} 1 GiB")


if __name__ == "__main__":
    main()
