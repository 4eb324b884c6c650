"""A feed checked against a runner's inputs before any runtime sees it, so that a wrong name or
dtype is an error naming the input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pytest_trt.errors import BackendError
from pytest_trt.types import TensorSpec


def check_feed(inputs: Sequence[TensorSpec], feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed as contiguous arrays, or an error naming the wrong, missing or mistyped input."""
    names = {spec.name for spec in inputs}
    unknown = sorted(set(feed) - names)
    missing = sorted(names - set(feed))
    if unknown or missing:
        what = f"unknown input {unknown[0]!r}" if unknown else f"missing input {missing[0]!r}"
        raise BackendError(f"infer: {what} (model inputs: {', '.join(sorted(names))})")
    checked = {}
    for spec in inputs:
        array = np.ascontiguousarray(feed[spec.name])
        if array.dtype != spec.dtype:
            raise BackendError(f"infer: input {spec.name!r} has dtype {array.dtype}, the model wants {spec.dtype}")
        checked[spec.name] = array
    return checked
