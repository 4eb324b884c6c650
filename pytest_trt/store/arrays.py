"""Named arrays as bytes (.npz) for the cache, e.g. reference outputs; never pickled."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Arrays as .npz bytes, for caching reference outputs without pickle."""
    import numpy as np

    buffer = io.BytesIO()
    by_name: dict[str, Any] = {name: np.asarray(a) for name, a in arrays.items()}
    np.savez(buffer, **by_name)
    return buffer.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of ``encode_arrays``; refuses pickled (object) arrays."""
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
