"""The autotune cache file: writing it, and reading it back without trusting it.

The file is JSON: a format name and version, the fingerprint of the machine that made it,
and one entry per tuned call signature (the op, the spec's fields, the winning backend
and the timings). Reading checks everything a stale, foreign, corrupt or hostile file can
get wrong and raises :class:`ValueError` saying what, so that the caller can ignore the
file with a warning: a cache is a hint and must never break a program.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn.ops import BACKEND_OPS, POOL_MODES
from fastcnn.spec import ConvSpec, PoolSpec

FORMAT = "fastcnn-autotune"
VERSION = 1
#: Compute dtypes a spec can name.
DTYPES = ("float32", "float64")

Spec = ConvSpec | PoolSpec
Key = tuple[str, Spec]
_KINDS: dict[str, type] = {"ConvSpec": ConvSpec, "PoolSpec": PoolSpec}


def fingerprint() -> dict[str, Any]:
    """What makes timings from another machine or setup meaningless here."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }


def write(path: str | Path, tuned: dict[Key, str], timings: dict[Key, dict[str, float]]) -> int:
    """Write the tuned choices to ``path``; returns how many entries were written."""
    entries = [
        {
            "op": op,
            "kind": type(spec).__name__,
            "spec": asdict(spec),
            "backend": name,
            "seconds": timings.get((op, spec), {}),
        }
        for (op, spec), name in tuned.items()
    ]
    data = {"format": FORMAT, "version": VERSION, "fingerprint": fingerprint(), "entries": entries}
    Path(path).write_text(json.dumps(data, indent=1, allow_nan=True))
    return len(entries)


def read(path: str | Path, known_backends: tuple[str, ...]) -> dict[Key, str]:
    """The tuned choices in ``path``, all or nothing.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If it is not valid JSON (nested too deep included), not a fastcnn autotune cache,
        of another version, made on another machine or NumPy, or if any entry is
        malformed or names a backend not in ``known_backends``.
    """
    text = Path(path).read_text()
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply to be a cache") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("it is not a fastcnn autotune cache")
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r} is not {VERSION}")
    if data.get("fingerprint") != fingerprint():
        raise ValueError("it was made on another machine or NumPy version")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ValueError("its 'entries' is not a list")
    loaded = {}
    for i, entry in enumerate(entries):
        try:
            key, name = _entry(entry, known_backends)
        except ValueError as exc:
            raise ValueError(f"entry {i}: {exc}") from None
        loaded[key] = name
    return loaded


def _entry(entry: Any, known_backends: tuple[str, ...]) -> tuple[Key, str]:
    if not isinstance(entry, dict):
        raise ValueError("is not an object")
    op, kind, name = entry.get("op"), entry.get("kind"), entry.get("backend")
    if op not in BACKEND_OPS:
        raise ValueError(f"op {op!r} is not one of {BACKEND_OPS}")
    if name not in known_backends:
        raise ValueError(f"backend {name!r} is not registered here ({', '.join(known_backends)})")
    if kind not in _KINDS:
        raise ValueError(f"kind {kind!r} is not one of {tuple(_KINDS)}")
    return (op, _spec(_KINDS[kind], entry.get("spec"))), name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_ints(count: int) -> Any:
    return lambda v: isinstance(v, list) and len(v) == count and all(map(_is_int, v))


# One check per annotation the spec classes use (annotations are strings here).
_FIELD_CHECKS = {
    "int": _is_int,
    "Pair": _is_ints(2),
    "Quad": _is_ints(4),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}
_ALLOWED = {"dtype": DTYPES, "mode": POOL_MODES}


def _spec(cls: type, values: Any) -> Spec:
    if not isinstance(values, dict):
        raise ValueError("its spec is not an object")
    names = {f.name for f in fields(cls)}
    if set(values) != names:
        raise ValueError(f"its spec's fields {sorted(values)} are not {cls.__name__}'s")
    for f in fields(cls):
        value = values[f.name]
        if not _FIELD_CHECKS[str(f.type)](value) or value not in _ALLOWED.get(f.name, (value,)):
            raise ValueError(f"its spec's {f.name}={value!r} is not a valid {f.type}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
