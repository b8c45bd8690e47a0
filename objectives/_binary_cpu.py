"""Fast CPU kernels for the binary focal loss.

Everything derives from e = exp(-|z|) (|s z| = |z|), 1/(1+e) and log1p(e):

    p_t = sigmoid(s z) and u = 1 - p_t are 1/(1+e) and e/(1+e), picked by the sign of s z;
    log p_t = min(s z, 0) - log1p(e);
    p_t log p_t is formed before it meets other factors: it is bounded by 1/e, while
    log p_t alone can be -3e38 for float32 input.

Margins of any size give finite values. One numba loop with no calls and no branches
(selects only) does the work and LLVM vectorises it. Where e and log1p(e) come from
depends on the precision:

- float32 (XGBoost's and LightGBM's margins, the training path): computed in the loop by
  ``_float32_math.logistic_parts`` (a few ulp), so a round is one pass over memory;
- float64: numpy's SIMD ``exp`` and ``log`` fill two cache-sized buffers per chunk of rows,
  and log1p(e) = log(1+e) * e / ((1+e) - 1) (Kahan's formula: no cancellation when e is
  tiny).

Multiply-adds may be fused (``fastmath={"contract"}``: one rounding instead of two; no
other fast-math licence). Single-threaded on purpose: XGBoost's bundled OpenMP runtime
keeps its workers spinning after each round, and a parallel kernel started then fights
them for the cores (measured: slower than serial on 2 cores).

Arithmetic runs in the precision of the margin: float32 margins (XGBoost's) in float32,
float64 in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._float32_math import logistic_parts

_JIT = dict(nogil=True, fastmath={"contract"}, error_model="numpy", cache=True)
# The row loops take functions as arguments, and numba's on-disk cache cannot key such a
# signature: each process missed it, appended another entry (60 in a working tree) and at
# last failed to load the index ("underlying object has vanished"). They compile once per
# process instead (a few seconds), like every other first call.
_LOOP_JIT = {**_JIT, "cache": False}
CHUNK_ROWS = 1 << 17  # 512 KiB of float32 per buffer: fits L2, few dispatches


# u**gamma, one function per exponent family. The kernels take the function as an
# argument, so numba compiles one specialisation per family: a runtime
# branch that merely contains a pow() call halves the speed of the whole loop.
@numba.njit(**_JIT)
def pow_0(u, gamma, one):
    return one


@numba.njit(**_JIT)
def pow_half(u, gamma, one):
    return math.sqrt(u)


@numba.njit(**_JIT)
def pow_1(u, gamma, one):
    return u


@numba.njit(**_JIT)
def pow_2(u, gamma, one):
    return u * u


@numba.njit(**_JIT)
def pow_3(u, gamma, one):
    return u * u * u


@numba.njit(**_JIT)
def pow_any(u, gamma, one):
    return u**gamma


POW_BY_GAMMA = {0.0: pow_0, 0.5: pow_half, 1.0: pow_1, 2.0: pow_2, 3.0: pow_3}


def pow_for(gamma: float):
    """The u**gamma function the kernels should be specialised with."""
    return POW_BY_GAMMA.get(float(gamma), pow_any)


@numba.njit(inline="always", nogil=True, fastmath={"contract"}, error_model="numpy")
def _terms(z, y, e, big, log1p_e, gamma, upow, alpha, one):
    """s = 2y - 1, p_t, u = 1 - p_t, log p_t, u**gamma and alpha_t for one row, from
    e = exp(-|z|), big = 1 / (1 + e) = sigmoid(|z|) and log1p(e)."""
    zero = one - one
    s = one if y > 0.5 else -one
    x = s * z
    small = e * big  # sigmoid(-|x|), exact even when tiny
    nonneg = x >= zero
    pt = big if nonneg else small
    u = small if nonneg else big
    log_pt = min(x, zero) - log1p_e
    ug = upow(u, gamma, one)
    if alpha < zero:
        at = one
    else:
        at = alpha if s > zero else one - alpha
    return s, pt, u, log_pt, ug, at


@numba.njit(inline="always", nogil=True, fastmath={"contract"}, error_model="numpy")
def from_numpy_buffers(i, z, e_buf, l_buf, one):
    """e, 1 / (1 + e) and log1p(e) from numpy's exp and log(1 + e) of the chunk (the
    float64 route)."""
    e = e_buf[i]
    w1 = one + e
    d = w1 - one
    return e, one / w1, (l_buf[i] * e / d if d != one - one else e)


@numba.njit(inline="always", nogil=True, fastmath={"contract"}, error_model="numpy")
def computed_in_loop(i, z, e_buf, l_buf, one):
    """e, 1 / (1 + e) and log1p(e) computed in the loop itself (the float32 route)."""
    return logistic_parts(abs(z[i]))


@numba.njit(**_LOOP_JIT)
def _grad_hess_rows(z, y, w, source, e_buf, l_buf, gamma, upow, alpha, floor, one, grad, hess):
    two = one + one
    weighted = w.shape[0] > 0
    use_floor = not math.isnan(floor)
    for i in range(z.shape[0]):
        e, big, log1p_e = source(i, z, e_buf, l_buf, one)
        s, pt, u, log_pt, ug, at = _terms(z[i], y[i], e, big, log1p_e, gamma, upow, alpha, one)
        pt_log_pt = pt * log_pt
        g = at * s * ug * (gamma * pt_log_pt - u)
        h = at * ug * ((two * gamma + one) * u * pt + gamma * (u - gamma * pt) * pt_log_pt)
        if use_floor:
            h = max(h, floor)
        if weighted:
            g *= w[i]
            h *= w[i]
        grad[i] = g
        hess[i] = h


@numba.njit(**_LOOP_JIT)
def _loss_rows(z, y, w, source, e_buf, l_buf, gamma, upow, alpha, one, out):
    weighted = w.shape[0] > 0
    for i in range(z.shape[0]):
        e, big, log1p_e = source(i, z, e_buf, l_buf, one)
        s, pt, u, log_pt, ug, at = _terms(z[i], y[i], e, big, log1p_e, gamma, upow, alpha, one)
        v = -at * ug * log_pt
        if weighted:
            v *= w[i]
        out[i] = v


def _chunks(z: np.ndarray):
    """(rows, source, e buffer, log(1+e) buffer) per pass over ``z``.

    float32: one pass, e and log1p(e) computed in the loop. float64: chunks of rows, for
    each numpy's SIMD exp and log fill two small reused buffers first."""
    if z.dtype == np.float32:
        unused = np.empty(0, dtype=z.dtype)
        yield slice(0, z.shape[0]), computed_in_loop, unused, unused
        return
    n = z.shape[0]
    size = min(n, CHUNK_ROWS)
    e_buf = np.empty(size, dtype=z.dtype)
    l_buf = np.empty(size, dtype=z.dtype)
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, n))
        m = rows.stop - rows.start
        e, log_w1 = e_buf[:m], l_buf[:m]
        np.abs(z[rows], out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.add(e, 1, out=log_w1)
        np.log(log_w1, out=log_w1)
        yield rows, from_numpy_buffers, e, log_w1


def grad_hess(z, y, w, gamma: float, alpha_code: float, floor: float | None, grad, hess) -> None:
    """Fill ``grad``/``hess`` (``w`` empty for unit weights; ``alpha_code`` < 0: no alpha;
    ``floor`` None: exact hessian)."""
    ftype = z.dtype.type
    args = (ftype(gamma), pow_for(gamma), ftype(alpha_code),
            ftype(math.nan if floor is None else floor), ftype(1.0))
    weighted = w.shape[0] > 0
    for rows, source, e, log_w1 in _chunks(z):
        _grad_hess_rows(z[rows], y[rows], w[rows] if weighted else w, source, e, log_w1, *args,
                        grad[rows], hess[rows])


def loss(z, y, w, gamma: float, alpha_code: float, out) -> None:
    """Fill ``out`` with the per-row loss."""
    ftype = z.dtype.type
    args = (ftype(gamma), pow_for(gamma), ftype(alpha_code), ftype(1.0))
    weighted = w.shape[0] > 0
    for rows, source, e, log_w1 in _chunks(z):
        _loss_rows(z[rows], y[rows], w[rows] if weighted else w, source, e, log_w1, *args, out[rows])
