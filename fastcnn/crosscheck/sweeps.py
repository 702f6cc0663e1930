"""Audit sweeps: many random cases over every parameter, in-process or over Dask workers.

:func:`random_cases` draws cases with a NumPy generator: every op, batched and unbatched
inputs, groups, kernel sizes, strides, dilations, every padding form, bias, ``ceil_mode``
and ``count_include_pad``. :func:`sweep` audits each case on its own with
:func:`fastcnn.crosscheck.run`, its inputs seeded by ``(seed, case index)``, so a case's
result does not depend on where or in which order it runs, and merges one report.

Over Dask (``scheduler=`` an address, or ``"local"`` for a ``distributed.LocalCluster``
started for the sweep), each case is one task. A worker that dies mid-sweep loses its
tasks; the scheduler runs them again elsewhere, and the report still counts every case
once (results are merged by case index). Backends come from the workers' own installs:
a backend added with ``register_backend`` in this process is not on the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastcnn.cases import Case
from fastcnn.crosscheck.audit import run
from fastcnn.crosscheck.report import DTYPES, Report
from fastcnn.ops import CONV2D, FORWARD_OPS, pool_mode
from fastcnn.spec import make_conv_spec, make_pool_spec

LOCAL = "local"
#: Largest spatial size drawn: big enough for every window shape, small enough that the
#: reference loops take milliseconds per case.
MAX_SIZE = 11


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _pair(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))


def _shape(rng: np.random.Generator, channels: int, least: tuple[int, int]) -> tuple[int, ...]:
    """An input shape, unbatched one time in five, each side at least ``least``."""
    h = int(rng.integers(least[0], max(least[0], MAX_SIZE) + 1))
    w = int(rng.integers(least[1], max(least[1], MAX_SIZE) + 1))
    batch = int(rng.integers(0, 3))
    return (channels, h, w) if batch == 0 else (batch, channels, h, w)


def _conv_case(rng: np.random.Generator) -> Case:
    groups = _pick(rng, (1, 1, 2, 3))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel, dilation, stride = _pair(rng, 1, 4), _pair(rng, 1, 2), _pair(rng, 1, 3)
    padding = _pick(
        rng,
        (
            0,
            int(rng.integers(0, 3)),
            _pair(rng, 0, 2),
            tuple(int(p) for p in rng.integers(0, 3, size=4)),
            "valid",
            "same" if stride == (1, 1) else 1,
        ),
    )
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    params["bias"] = bool(rng.integers(2))
    x = _shape(rng, cin, span)
    return Case(CONV2D, x, (cout, cin // groups, *kernel), params)


def _pool_case(rng: np.random.Generator, op: str) -> Case:
    kernel = _pair(rng, 1, 4)
    params: dict[str, Any] = {"kernel": kernel, "stride": _pair(rng, 1, 3)}
    params["padding"] = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    params["ceil_mode"] = bool(rng.integers(2))
    if pool_mode(op) == "mean":
        params["count_include_pad"] = bool(rng.integers(2))
        span = kernel
    else:
        params["dilation"] = _pair(rng, 1, 2)
        span = tuple(d * (k - 1) + 1 for d, k in zip(params["dilation"], kernel, strict=True))
    return Case(op, _shape(rng, int(rng.integers(1, 4)), span), None, params)


def _valid(case: Case) -> bool:
    """Whether the front end accepts the case (a draw can still give an empty output)."""
    x = np.broadcast_to(np.zeros((), np.float32), case.x if len(case.x) == 4 else (1, *case.x))
    params = case.call_params()
    try:
        if case.is_conv:
            w = np.broadcast_to(np.zeros((), np.float32), case.w)
            make_conv_spec(x, w, bias=case.has_bias, dtype=np.dtype("float32"), **params)
        else:
            kernel = case.params["kernel"]
            make_pool_spec(x, case.mode, kernel, dtype=np.dtype("float32"), **params)
    except ValueError:
        return False
    return True


def random_cases(count: int, rng: np.random.Generator) -> list[Case]:
    """``count`` valid cases drawn from ``rng``, each named by its index in the sweep."""
    cases: list[Case] = []
    while len(cases) < count:
        op = _pick(rng, FORWARD_OPS)
        case = _conv_case(rng) if op == CONV2D else _pool_case(rng, op)
        if _valid(case):
            name = f"#{len(cases)} {case.to_string()}"
            cases.append(Case(case.op, case.x, case.w, case.params, name=name))
    return cases


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index``'s inputs: a function of the sweep's seed and the index."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def audit_case(case: Case, seed: int, backends: Sequence[str] | None, dtypes: Sequence[str]):
    """One sweep case's report (what a worker runs)."""
    return run([case], backends=backends, dtypes=dtypes, seed=seed)


def merge(seed: int, reports: Sequence[Report]) -> Report:
    """One report from the per-case reports of a sweep, in case order."""
    backends = sorted({name for r in reports for name in r.backends})
    unavailable = {k: v for r in reports for k, v in r.unavailable.items()}
    results = [result for r in reports for result in r.results]
    return Report(seed=seed, backends=backends, unavailable=unavailable, results=results)


def sweep(
    count: int,
    *,
    seed: int = 0,
    backends: Sequence[str] | None = None,
    dtypes: Sequence[str] = DTYPES,
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Audit ``count`` random cases drawn with ``seed`` (which also seeds their data).

    Parameters
    ----------
    count : int
        Number of cases.
    seed : int
        Seeds the case generator and each case's inputs.
    backends, dtypes
        As for :func:`fastcnn.crosscheck.run`.
    scheduler : str, optional
        None runs in this process; a Dask scheduler address (``tcp://host:8786``) or
        ``"local"`` (a ``distributed.LocalCluster`` started for the sweep) runs one task
        per case on the workers. Needs ``fastcnn[dask]``.
    progress : callable, optional
        Called with a short label as each case finishes.

    Returns
    -------
    Report
        Every case's results, merged in case order.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r} must be a positive int")
    cases = random_cases(count, np.random.default_rng(seed))
    seeds = [case_seed(seed, i) for i in range(count)]
    if scheduler is None:
        reports = []
        for case, case_seed_ in zip(cases, seeds, strict=True):
            reports.append(audit_case(case, case_seed_, backends, dtypes))
            if progress is not None:
                progress(case.name)
        return merge(seed, reports)
    return merge(seed, _on_dask(cases, seeds, backends, dtypes, scheduler, progress))


def _on_dask(
    cases: list[Case],
    seeds: list[int],
    backends: Sequence[str] | None,
    dtypes: Sequence[str],
    scheduler: str,
    progress: Callable[[str], None] | None,
) -> list[Report]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError(
            "a sweep over Dask workers needs the dask extra: pip install 'fastcnn[dask]'"
        ) from None
    cluster = LocalCluster(threads_per_worker=1) if scheduler == LOCAL else None
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            futures = client.map(
                audit_case,
                cases,
                seeds,
                backends=backends,
                dtypes=list(dtypes),
                key=[f"fastcnn-sweep-{i}-{s}" for i, s in enumerate(seeds)],
            )
            index = {f.key: i for i, f in enumerate(futures)}
            reports: list[Report | None] = [None] * len(cases)
            for future in as_completed(futures):
                i = index[future.key]
                reports[i] = future.result()
                if progress is not None:
                    progress(cases[i].name)
    finally:
        if cluster is not None:
            cluster.close()
    return [r for r in reports if r is not None]
