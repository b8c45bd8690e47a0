"""Array-backend dispatch: numpy on the host, CuPy on the device, chosen by the input.

CuPy is optional: it is imported only when an array that is not numpy comes in, so
the CPU install never needs it.
"""

from __future__ import annotations

import numpy as np


def is_device_array(a) -> bool:
    """True for CuPy (or any CUDA-array-interface) arrays, without importing CuPy."""
    return hasattr(a, "__cuda_array_interface__")


def namespace(a):
    """numpy or cupy, whichever owns ``a``."""
    if is_device_array(a):
        import cupy

        return cupy
    return np


def float_dtype(a):
    """float32 stays float32 (what XGBoost hands us); everything else is computed as float64."""
    return np.float32 if a.dtype == np.float32 else np.float64


def as_host_1d(a, name: str) -> np.ndarray:
    """Contiguous 1-D numpy view of ``a`` (no copy when it already is one)."""
    arr = np.ascontiguousarray(a)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D for a binary objective, got shape {arr.shape}")
    return arr


def to_host(a) -> np.ndarray:
    """numpy copy of a device array; numpy arrays pass through."""
    return a.get() if is_device_array(a) else np.asarray(a)

