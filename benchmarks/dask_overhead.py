"""What a Dask cluster costs against the same work in-process, measured in one run.

A ResNet-style 3x3 convolution (64 -> 64 channels, 56 x 56, padding 1) over a batch
large enough for seconds of work, reduced with ``.sum()``, computed two ways:

- in-process: ``fastcnn.conv2d`` block after block of the same batch chunks, fastcnn
  and BLAS at one thread per core;
- on a ``distributed.LocalCluster`` of one worker process per core, one thread each,
  fastcnn and BLAS at one thread: ``fastcnn.dask.conv2d`` on a batch created on the
  workers with ``da.random``.

Two comparisons: with the data's creation included on both sides (in-process creates
each chunk with NumPy's generator, the workers with ``da.random``), and with the data
already in memory (``persist`` on the workers, the chunks pre-made in-process), which
is the overhead of the Dask path alone. Rounds alternate the two sides; the ratio is
in-process time over cluster time (throughput of the cluster relative to in-process).
Run by hand::

    python benchmarks/dask_overhead.py [--images 512] [--backend numba] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

import fastcnn
import fastcnn.dask as fd

SHAPE = (64, 56, 56)  # channels, height, width of each image
CHUNK = 32  # images per chunk
#: Pause between the two sides, so that one side's idle spinning threads (OpenMP,
#: OpenBLAS) have gone to sleep before the other side is timed.
SETTLE_SECONDS = 1.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def in_process(
    chunks: list[np.ndarray] | None, n_chunks: int, w: np.ndarray, backend: str
) -> float:
    """Seconds for conv + sum over every chunk; chunks made here when ``chunks`` is None."""
    start = time.perf_counter()
    total = 0.0
    for k in range(n_chunks):
        x = (
            np.random.default_rng(k).standard_normal((CHUNK, *SHAPE), dtype=np.float32)
            if chunks is None
            else chunks[k]
        )
        total += float(fastcnn.conv2d(x, w, padding=1, backend=backend).sum())
    return time.perf_counter() - start


def on_cluster(client: Client, x: da.Array, w: np.ndarray, backend: str) -> float:
    start = time.perf_counter()
    client.compute(fd.conv2d(x, w, padding=1, backend=backend).sum()).result()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    n_chunks = args.images // CHUNK
    w = np.random.default_rng(99).standard_normal((64, *SHAPE[:1], 3, 3)).astype(np.float32)
    x = da.random.default_rng(0).standard_normal(
        (n_chunks * CHUNK, *SHAPE), chunks=(CHUNK, *SHAPE), dtype=np.float32
    )
    with (
        LocalCluster(
            n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None,
            env=ONE_THREAD,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.run(fastcnn.set_num_threads, 1)
        persisted = client.persist(x)
        wait(persisted)
        small = np.ones((1, *SHAPE), np.float32)
        client.run(lambda: fastcnn.conv2d(small, w, padding=1, backend=args.backend))
        pre_made = [np.asarray(c) for c in np.split(persisted.compute(), n_chunks)]
        in_process(pre_made[:1], 1, w, args.backend)  # warm up (JIT cache, BLAS)
        results: dict[str, list[float]] = {"created": [], "in memory": []}
        for _ in range(args.rounds):
            for label, chunks, lazy in (("created", None, x), ("in memory", pre_made, persisted)):
                local = in_process(chunks, n_chunks, w, args.backend)
                time.sleep(SETTLE_SECONDS)
                remote = on_cluster(client, lazy, w, args.backend)
                time.sleep(SETTLE_SECONDS)
                results[label].append(local / remote)
                print(
                    f"{label:>9}: in-process {local:6.2f} s, cluster {remote:6.2f} s, "
                    f"throughput ratio {local / remote:.2f}"
                )
    print(
        f"{args.images} images, {args.backend}, {cores} workers x 1 thread vs in-process "
        f"at {cores} threads; median ratio: "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in results.items())
    )


if __name__ == "__main__":
    main()
