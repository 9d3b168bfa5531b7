"""numpy arrays as JSON: what a trainer keeps beside a checkpoint's state
(``Checkpointer.save(extra=)``: the host loop's env snapshots)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np


def array_to_json(x: Any) -> dict[str, Any]:
  """A numpy array as JSON (dtype, shape, base64 bytes), for ``save(extra=)``."""
  x = np.ascontiguousarray(x)
  return {"dtype": x.dtype.str, "shape": list(x.shape), "b64": base64.b64encode(x).decode()}


def array_from_json(d: Mapping[str, Any]) -> np.ndarray:
  """The inverse of :func:`array_to_json`."""
  flat = np.frombuffer(base64.b64decode(d["b64"]), np.dtype(d["dtype"]))
  return flat.reshape(d["shape"]).copy()
