"""Rounding-error bounds from analysis, per algorithm family, and each error's share of one.

Notation: ``u`` is the unit roundoff of the compute dtype (2**-24 in float32, 2**-53 in
float64) and ``gamma(k, u) = k u / (1 - k u)`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., 2002, Lemma 3.1).

- **direct** (loops, GEMM; Higham §3.1, eq. 3.5): a sum of ``K`` products computed in any
  order satisfies ``|y^ - y| <= gamma(K, u) * S`` elementwise, with ``S`` the same sum over
  ``|x| |w|``: the reference run on absolute inputs (and ``|dy|`` for gradients). The audit
  hands the backend inputs rounded from float64 to its dtype (each within ``u``), so a
  product of two rounded inputs is within ``gamma(2, u)`` of the exact one and the
  backend is held to ``gamma(K + 2, u) S`` (Lemma 3.3); the float64 reference's own error
  adds ``gamma(K, 2**-53) S``. ``K``: ``C_in/groups * kh * kw`` (+1 with bias) for ``y``,
  ``C_out/groups * kh * kw`` for ``dX``, ``N * OH * OW`` for ``dW`` and ``db``. Max/min
  pooling is exact up to the rounding of its input (``K = 0``); its backward sums at most
  ``kh * kw`` routed gradients; mean pooling sums ``kh * kw`` terms and divides once.
- **fft** (Higham Thm 24.2): a radix-2 FFT of length ``L`` computed with twiddle factors
  accurate to ``mu`` has ``||X^ - X||_2 <= t eta / (1 - t eta) ||X||_2`` with
  ``t = log2 L`` and ``eta = mu + gamma(4, u) (sqrt 2 + mu)``; we take ``mu = u``
  (pocketfft's twiddles are correctly rounded in practice) and apply the same form to
  mixed-radix lengths, ``L`` being the next power of two of each padded side. A convolution
  by FFT is three transforms, a pointwise product and the channel sum, so per output plane
  ``||e||_2 <= (3 t eta / (1 - t eta) + gamma(C + 3, u)) B`` with ``B = sum_c
  min(||x_c||_2 ||w_c||_1, ||x_c||_1 ||w_c||_2)`` (Young's inequality bounds each channel's
  exact plane, and each transformed plane's errors, by these norm products).
- **winograd** (Barabasz, Anderson, Soodhalter, Gregg 2020, "Error analysis and improving
  the accuracy of Winograd convolution for deep neural networks", ACM TOMS 46(4)): the
  error of F(m, r) is the direct one grown by the transforms ``A^T, G, B^T``. We use
  their first-order form per output plane in the infinity norm:
  ``max|e| <= growth * gamma(K + 2 + 4n + 2r, u) * max S`` with ``n = m + r - 1`` (the
  transform dot products along both axes) and ``growth = g_1**2`` (2-D nests two 1-D
  transforms), ``g_1 = max_i sum_k |A^T|_ik ||G_k||_1 ||B^T_k||_1 / r``: how much larger
  the transformed sum over absolute values can be than the ``r`` direct terms.

Exact mode: integer-valued inputs whose partial sums stay below 2**24 are summed exactly
in float32 and float64, so the bound is 0 except where a division rounds (mean pooling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fastcnn.registry import ErrorModel

#: Unit roundoff of each compute dtype.
UNIT_ROUNDOFF: dict[str, float] = {"float32": 2.0**-24, "float64": 2.0**-53}
_U64 = UNIT_ROUNDOFF["float64"]

#: The standard Winograd transforms (Lavin and Gray 2016) as (A^T, G, B^T), by tile m.
WINOGRAD_TRANSFORMS: dict[int, tuple[tuple[tuple[float, ...], ...], ...]] = {
    2: (
        ((1, 1, 1, 0), (0, 1, -1, -1)),
        ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
        ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    ),
    4: (
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
        (
            (1 / 4, 0, 0),
            (-1 / 6, -1 / 6, -1 / 6),
            (-1 / 6, 1 / 6, -1 / 6),
            (1 / 24, 1 / 12, 1 / 6),
            (1 / 24, -1 / 12, 1 / 6),
            (0, 0, 1),
        ),
        (
            (4, 0, -5, 0, 1, 0),
            (0, -4, -4, 1, 1, 0),
            (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0),
            (0, 2, -1, -2, 1, 0),
            (0, 4, 0, -5, 0, 1),
        ),
    ),
}


def gamma(k: float, u: float) -> float:
    """``k u / (1 - k u)``: the relative error bound of ``k`` roundings (Higham Lemma 3.1)."""
    if k <= 0:
        return 0.0
    return k * u / (1.0 - k * u) if k * u < 1 else math.inf


def fft_relative(length: int, u: float) -> float:
    """Normwise relative error of one FFT of ``length`` points (Higham Thm 24.2, mu = u)."""
    eta = u + gamma(4, u) * (math.sqrt(2.0) + u)
    t = math.log2(max(length, 2)) * eta
    return t / (1.0 - t)


def winograd_growth(model: ErrorModel) -> float:
    """The 2-D growth factor of a Winograd model: declared, or from its transforms."""
    if model.growth is not None:
        return float(model.growth)
    at, g, bt = (np.abs(np.asarray(m, dtype=np.float64)) for m in _transforms(model))
    per_point = g.sum(axis=1) * bt.sum(axis=1)  # ||G_k||_1 ||B^T_k||_1 per tile point k
    one_d = float((at @ per_point).max()) / g.shape[1]
    return one_d**2


def _transforms(model: ErrorModel) -> tuple:
    if model.transforms is not None:
        return model.transforms
    if model.tile not in WINOGRAD_TRANSFORMS:
        raise ValueError(
            f"winograd tile {model.tile}: declare its transforms= (A^T, G, B^T) or growth="
        )
    return WINOGRAD_TRANSFORMS[model.tile]


@dataclass
class Scale:
    """What bounds one result array of a case: its magnitudes and its term counts.

    Attributes
    ----------
    s : numpy.ndarray
        The reference run on absolute inputs (``|y|`` for max/min pooling).
    terms : int
        Products (or terms) summed per output, ``K``.
    operands : int
        Rounded inputs per term (2 for a product, 1 for pooling).
    exact_terms : int
        Roundings left with integer-valued data (a mean's division).
    young : numpy.ndarray, optional
        Per output plane, the norm product ``B`` of the FFT bound (None where no
        transform computes this result, e.g. a bias gradient or pooling).
    contracted : int
        Planes summed per output plane in the transformed domain.
    length : int
        The transform length ``L`` the FFT bound assumes.
    kernel_taps : int
        ``kh * kw``: for Winograd's transform count.
    """

    s: np.ndarray
    terms: int
    operands: int
    exact_terms: int = 0
    young: np.ndarray | None = None
    contracted: int = 0
    length: int = 1
    kernel_taps: int = 1


def _planes(err: np.ndarray) -> np.ndarray:
    """Errors as (planes, cells): one row per leading-axes index of a 4-D result."""
    if err.ndim == 4:
        return err.reshape(err.shape[0] * err.shape[1], -1)
    if err.ndim == 3:  # an unbatched result: its channels are the planes
        return err.reshape(err.shape[0], -1)
    return err.reshape(1, -1)


def _ratio(err: np.ndarray, bound: np.ndarray) -> float:
    """Largest ``err / bound``: 0 where both are 0, inf where only the bound is."""
    if err.size == 0:
        return 0.0
    if not np.isfinite(err).all():
        return math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / bound)
    return float(np.nan_to_num(ratio, nan=math.inf, posinf=math.inf).max())


def bound_use(
    model: ErrorModel,
    scale: Scale,
    err: np.ndarray,
    dtype: str,
    *,
    exact: bool = False,
    factor: float = 1.0,
) -> float:
    """The error's share of its bound: at most 1 passes.

    Parameters
    ----------
    model : ErrorModel
        The backend's declared model.
    scale : Scale
        The result's magnitudes and counts.
    err : numpy.ndarray
        ``|result - reference|`` in float64, shaped like the result.
    dtype : str
        The backend's compute dtype.
    exact : bool
        Exact mode (integer-valued data): only divisions round.
    factor : float
        The deprecated ``error_factor`` multiplier (at least 1).
    """
    u = UNIT_ROUNDOFF[dtype]
    factor = max(float(factor), 1.0)
    if exact:
        k = scale.exact_terms
        coeff = gamma(k, u) + gamma(k, _U64)
        return _ratio(err, factor * coeff * scale.s)
    direct = gamma(scale.terms + scale.operands, u) + gamma(scale.terms, _U64)
    if model.kind == "fft" and scale.young is not None:
        coeff = 3 * fft_relative(scale.length, u) + gamma(scale.contracted + 3, u)
        coeff += gamma(scale.terms, _U64)
        norms = np.sqrt(np.sum(np.square(_planes(err)), axis=1))
        return _ratio(norms, factor * coeff * scale.young.reshape(-1))
    if model.kind == "winograd" and scale.young is not None:
        n = (model.tile or 2) + model.kernel - 1
        rounds = scale.terms + scale.operands + 4 * n + 2 * model.kernel
        coeff = winograd_growth(model) * gamma(rounds, u) + gamma(scale.terms, _U64)
        worst = _planes(err).max(axis=1)
        peak = _planes(scale.s).max(axis=1)
        return _ratio(worst, factor * coeff * peak)
    return _ratio(err, factor * direct * scale.s)


# --- the scales of a case's results -----------------------------------------------------------


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def _norms(a: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-plane 2- and 1-norms of a 4-D array, as (lead, groups, per-group) arrays."""
    flat = np.abs(a.reshape(a.shape[0], groups, a.shape[1] // groups, -1))
    return np.sqrt(np.sum(flat * flat, axis=-1)), np.sum(flat, axis=-1)


def _young(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``min(||a||_2 ||b||_1, ||a||_1 ||b||_2)`` for broadcast plane pairs."""
    return np.minimum(a[0] * b[1], a[1] * b[0])


def conv_scales(
    spec: object,
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    grad_y: np.ndarray,
    magnitudes: list[np.ndarray | None],
) -> list[Scale | None]:
    """Scales of a convolution's ``[y, dx, dw, db]``, from the runs on absolute inputs.

    ``spec`` is the case's :class:`~fastcnn.spec.ConvSpec`; arrays are 4-D.
    """
    groups, n = spec.groups, spec.batch
    cin_g, cout_g = spec.in_channels // groups, spec.out_channels // groups
    kh, kw = spec.kernel
    taps, positions = kh * kw, n * spec.out_height * spec.out_width
    length = _pow2(spec.padded_shape[0]) * _pow2(spec.padded_shape[1])
    x_n = _norms(x, groups)  # (N, G, Cg)
    w_n = tuple(v.reshape(groups, cout_g, cin_g) for v in _norms(w, 1))
    gy_n = _norms(grad_y, groups)  # (N, G, Og)
    y_b = _young(tuple(v[:, :, None, :] for v in x_n), tuple(v[None] for v in w_n)).sum(
        axis=-1
    )  # (N, G, Og)
    if b is not None:
        y_b = y_b + np.abs(b).reshape(1, groups, cout_g) * math.sqrt(positions / n)
    dx_b = _young(tuple(v[:, :, :, None] for v in gy_n), tuple(v[None] for v in w_n)).sum(2)
    dw_b = _young(tuple(v[:, :, None, :] for v in x_n), tuple(v[:, :, :, None] for v in gy_n))
    common = {"operands": 2, "length": length, "kernel_taps": taps}
    y, gx, gw, gb = magnitudes
    return [
        Scale(y, cin_g * taps + (b is not None), young=y_b, contracted=cin_g, **common),
        None if gx is None else Scale(gx, cout_g * taps, young=dx_b, contracted=cout_g, **common),
        None if gw is None else Scale(gw, positions, young=dw_b.sum(0), contracted=n, **common),
        None if gb is None else Scale(gb, positions, operands=1),
    ]


def pool_scales(spec: object, magnitudes: list[np.ndarray]) -> list[Scale]:
    """Scales of a pooling's ``[y, dx]``: max/min exact, mean a sum and one division."""
    taps = spec.kernel[0] * spec.kernel[1]
    y, gx = magnitudes
    if spec.mode == "mean":
        return [
            Scale(y, taps + 1, operands=1, exact_terms=1),
            Scale(gx, taps + 1, operands=1, exact_terms=taps + 1),
        ]
    return [Scale(y, 0, operands=1), Scale(gx, taps, operands=1)]
