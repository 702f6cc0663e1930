"""Winograd transform matrices from interpolation points, and the kernels generated from them.

:func:`transform_matrices` builds ``A^T, G, B^T`` of F(m, 3) exactly (in Fractions) from
:data:`POINTS`. :func:`generate` writes ``_kernels.py``: for every matrix ``L`` a Numba
function that applies ``X -> L X L^T`` to a block of tiles with the matrix's nonzero
entries written into its straight-line code (so the loop over tiles vectorises and no
multiply by 0 or 1 is done); ``fused.py`` gathers the tiles and runs them. Regenerate
with ``python -m fastcnn.backends.winograd.transforms`` after changing the points; a
test checks that the file is current.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np

#: Interpolation points per output tile size m (plus the point at infinity, implied).
#: Points of the smallest magnitude keep the transforms' entries (powers of the points,
#: and 1/f_j with f_j the products of the points' differences) closest to 1, which keeps
#: the rounding error low; 0 and infinity give sparse rows. F(2,3) uses wincnn's and
#: Lavin's 0, +-1. For F(4,3), 1/2 in place of wincnn's +2 (Barabasz et al. 2020) balances
#: large powers of -2 against small ones of 1/2: measured on ResNet-18's 3x3 layers in
#: float32 its error was 7.5-8.5x im2col's, against 20-26x with 0, +-1, +-2 and 20-23x with
#: 0, +-1, +-1/2 (benchmarks/winograd_error.py).
POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-2)),
}
TILES = tuple(POINTS)
KERNEL_FILE = Path(__file__).with_name("_kernels.py")


def _poly_mul(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


def _poly_from_roots(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients (ascending powers) of ``prod (x - r)``."""
    poly = [Fraction(1)]
    for r in roots:
        poly = _poly_mul(poly, [-r, Fraction(1)])
    return poly


def transform_matrices(m: int, r: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ``(A^T, G, B^T)`` of F(m, r) from :data:`POINTS`, as object arrays of Fractions.

    Toom-Cook: correlation is the transpose of polynomial multiplication evaluated at the
    finite points ``a_j`` and at infinity. ``A^T[i, j] = a_j^i``; ``G[j, k] = a_j^k / |f_j|``
    with ``f_j = prod_{l != j} (a_j - a_l)``; row j of ``B^T`` holds the coefficients of
    ``sign(f_j) prod_{l != j} (x - a_l)``; the point at infinity adds a last column
    ``e_{m-1}`` to ``A^T``, a last row ``e_{r-1}`` to ``G`` and the coefficients of
    ``prod_l (x - a_l)`` to ``B^T`` (wincnn's construction and sign convention).
    """
    points = POINTS[m]
    alpha = m + r - 1
    at = np.full((m, alpha), Fraction(0), dtype=object)
    g = np.full((alpha, r), Fraction(0), dtype=object)
    bt = np.full((alpha, alpha), Fraction(0), dtype=object)
    for j, a in enumerate(points):
        others = [b for b in points if b != a]
        f = math.prod((a - b for b in others), start=Fraction(1))
        sign = 1 if f > 0 else -1
        at[:, j] = [a**i for i in range(m)]
        g[j] = [a**k / abs(f) for k in range(r)]
        poly = _poly_from_roots(others)
        bt[j, : len(poly)] = [sign * c for c in poly]
    at[m - 1, alpha - 1] = Fraction(1)
    g[alpha - 1, r - 1] = Fraction(1)
    bt[alpha - 1] = _poly_from_roots(list(points))
    return at, g, bt


@cache
def named_matrices() -> dict[str, np.ndarray]:
    """Every matrix a kernel applies, by kernel name.

    ``bt{m}`` transforms input windows, ``g{m}`` filters and ``a{m}`` (``A``, alpha x m)
    dY tiles for dW: these are "in" kernels (``L X L^T`` into the tile-point layout).
    ``at{m}`` is the inverse transform and ``gt{m}`` (``G^T``) dW's last step: "out"
    kernels (``R M R^T`` from the tile-point layout).
    """
    out = {}
    for m in TILES:
        at, g, bt = transform_matrices(m)
        out |= {f"bt{m}": bt, f"g{m}": g, f"a{m}": at.T, f"at{m}": at, f"gt{m}": g.T}
    return out


IN_KERNELS = tuple(f"{kind}{m}" for kind in ("bt", "g", "a") for m in TILES)
OUT_KERNELS = tuple(f"{kind}{m}" for kind in ("at", "gt") for m in TILES)


def _constants(matrix: np.ndarray) -> list[Fraction]:
    """The distinct magnitudes other than 0 and 1, in a fixed order."""
    return sorted({abs(v) for v in matrix.flat if v != 0 and abs(v) != 1})


@cache
def constants(name: str, dtype: str) -> np.ndarray:
    """The constant array the generated kernel ``name`` reads its coefficients from."""
    values = [float(v) for v in _constants(named_matrices()[name])] or [0.0]
    array = np.array(values, dtype=dtype)
    array.flags.writeable = False
    return array


def _combination(row, names: list[str], consts: list[Fraction]) -> str:
    """``sum_i row[i] * names[i]`` as source, without multiplies by +-1."""
    terms = []
    for coef, name in zip(row, names, strict=True):
        if coef == 0:
            continue
        sign = "-" if coef < 0 else "+"
        factor = "" if abs(coef) == 1 else f"k{consts.index(abs(coef))} * "
        terms.append(f"{sign} {factor}{name}")
    if not terms:
        return "0"
    text = " ".join(terms)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _single_loop(header: list[str], assignments: list[tuple[str, str]]) -> list[str]:
    """One loop over the block's ``BLOCK`` tiles doing every assignment. Intermediate
    values are locals (registers) and arrays are flat with constant offsets, so LLVM
    needs one runtime alias check per array pair and vectorises the whole loop."""
    return header + ["    for q in range(BLOCK):"] + [f"        {t} = {e}" for t, e in assignments]


def _sandwich(matrix: np.ndarray, src: str, dst: str, bias: str = "") -> list[tuple[str, str]]:
    """Assignments computing ``Y = L X L^T`` for L = ``matrix`` (r x c): a pass over
    X's columns into locals ``h{u}_{j} = sum_i L[u, i] X[i, j]``, then one over the rows,
    ``Y[u, v] = bias + sum_j L[v, j] h{u}_{j}``. X (c x c) and Y (r x r) are the flat block
    arrays ``src`` and ``dst`` in row-major order."""
    r, c = matrix.shape
    consts = _constants(matrix)
    col = [
        (f"h{u}_{j}", _combination(matrix[u], [_win(i * c + j, src) for i in range(c)], consts))
        for u in range(r)
        for j in range(c)
    ]
    row = [
        (
            _win(u * r + v, dst),
            bias + _combination(matrix[v], [f"h{u}_{j}" for j in range(c)], consts),
        )
        for u in range(r)
        for v in range(r)
    ]
    return col + row


def _header(signature: str, doc: str, matrix: np.ndarray) -> list[str]:
    lines = ["@njit(cache=True, fastmath=FASTMATH)", f"def {signature}:  # pragma: no cover", doc]
    return lines + [f"    k{i} = kc[{i}]" for i in range(len(_constants(matrix)))]


def _in_kernel(name: str, matrix: np.ndarray) -> str:
    alpha, k = matrix.shape
    doc = (
        f'    """``out[(u*{alpha} + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] ='
        f' win[(i*{k} + j)*BLOCK + q]``, L = {name}."""'
    )
    header = _header(f"_in_{name}(win, out, kc)", doc, matrix)
    return "\n".join(_single_loop(header, _sandwich(matrix, "win", "out")))


def _win(index: int, array: str = "win") -> str:
    """Element ``index`` of tile q in a flat block array (constant offset, so LLVM sees
    the distance between the streams)."""
    return f"{array}[{index} * BLOCK + q]" if index else f"{array}[q]"


def _out_kernel(name: str, matrix: np.ndarray) -> str:
    m, alpha = matrix.shape
    doc = (
        f'    """``res[(a*{m} + b)*BLOCK + q] = bias + (R M_q R^T)[a, b]`` with ``M_q[u, v] ='
        f' prod[(u*{alpha} + v)*BLOCK + q]``, R = {name}."""'
    )
    header = _header(f"_out_{name}(prod, res, bias, kc)", doc, matrix)
    return "\n".join(_single_loop(header, _sandwich(matrix, "prod", "res", "bias + ")))


def generate() -> str:
    """The source of ``_kernels.py``."""
    matrices = named_matrices()
    parts = [_HEADER]
    parts += [_in_kernel(n, matrices[n]) for n in IN_KERNELS]
    parts += [_out_kernel(n, matrices[n]) for n in OUT_KERNELS]
    return "\n\n\n".join(parts) + "\n"


_HEADER = f'''"""Winograd transform kernels, GENERATED from the matrices of ``transforms.py`` by
``python -m fastcnn.backends.winograd.transforms``; do not edit (a test checks that this
file is current).
"""

# ruff: noqa: E501

from __future__ import annotations

from numba import njit

from fastcnn.jit import FASTMATH

#: Tiles transformed together: the trip count of every generated loop, a constant so that
#: the loops vectorise without a remainder.
BLOCK = 32
IN_KERNELS = {IN_KERNELS}
OUT_KERNELS = {OUT_KERNELS}'''

if __name__ == "__main__":
    KERNEL_FILE.write_text(generate())
