"""The same operations on Dask arrays: batches and images larger than memory, on a cluster.

Each function takes the front end's arguments with a dask array for ``x`` (and
``grad_y``), and returns dask arrays without computing anything. Every task runs the
ordinary front end (``fastcnn.conv2d`` ...) on one block:

- Chunks along the batch: one task per block of images, the whole call per block.
- Chunks in space: output ``i`` belongs to the input chunk holding row ``i * stride``
  (so a stride-1 "same" convolution keeps the chunks, and chunks that are multiples of
  the stride map onto chunks ``stride`` times smaller). Each output block reads exactly
  the rows and columns its windows touch, a halo of ``dilation * (kernel - 1)`` rows in
  all around its chunk, with the op's padding applied only at the real border, so the
  result equals the whole-array call (see :mod:`fastcnn.dask._plan`). A halo reaches
  into the neighbouring chunks, so about two rows of chunks are in memory at once:
  short chunks keep a wide image's footprint small.
- Channels: pooling keeps the channel chunks. A convolution sums over the input channels
  of each group, so a task needs all the channels of its groups: channel chunks are kept
  when their borders fall on group borders (grouped and depthwise convolution), and
  otherwise gathered into one block per task (the output then has one channel chunk).
- Gradients: ``dL/dx`` per input block from the ``grad_y`` rows whose windows reach it;
  ``dL/dw`` and ``dL/db`` as per-block partial sums added in a tree (``sum(axis=0)``).

The backend is resolved when the graph is built (the call's ``backend=``, else the
current :func:`fastcnn.use_backend` block or default, else ``"auto"``, which then chooses
per block) and travels with each task, since context variables do not reach workers.
Importing this module imports Dask; ``import fastcnn`` does not.
"""

from fastcnn.dask._conv import conv2d, conv2d_backward
from fastcnn.dask._pool import (
    max_pool2d,
    max_pool2d_backward,
    mean_pool2d,
    mean_pool2d_backward,
    min_pool2d,
    min_pool2d_backward,
)

__all__ = [
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "mean_pool2d",
    "mean_pool2d_backward",
    "min_pool2d",
    "min_pool2d_backward",
]
