"""fastcnn: 2-D convolution and pooling on NumPy arrays, over interchangeable backends.

Importing fastcnn loads NumPy only; backends (and SciPy, Numba) load on first use.
"""

from fastcnn.api import (
    conv2d,
    conv2d_backward,
    max_pool2d,
    max_pool2d_backward,
    mean_pool2d,
    mean_pool2d_backward,
    min_pool2d,
    min_pool2d_backward,
)
from fastcnn.config import (
    get_num_threads,
    get_workspace_limit,
    set_num_threads,
    set_workspace_limit,
)
from fastcnn.registry import (
    Backend,
    BackendBase,
    BackendInfo,
    BackendUnsupported,
    ConvGrads,
    ErrorModel,
    GradNeed,
    get_default_backend,
    list_backends,
    register_backend,
    set_default_backend,
    unregister_backend,
    use_backend,
)
from fastcnn.select import (
    autotuning,
    clear_autotune_cache,
    explain,
    load_autotune_cache,
    save_autotune_cache,
    set_autotune,
)
from fastcnn.spec import ConvSpec, PoolSpec

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendBase",
    "BackendInfo",
    "BackendUnsupported",
    "ConvGrads",
    "ConvSpec",
    "ErrorModel",
    "GradNeed",
    "PoolSpec",
    "__version__",
    "autotuning",
    "clear_autotune_cache",
    "conv2d",
    "conv2d_backward",
    "explain",
    "get_default_backend",
    "get_num_threads",
    "get_workspace_limit",
    "list_backends",
    "load_autotune_cache",
    "max_pool2d",
    "max_pool2d_backward",
    "mean_pool2d",
    "mean_pool2d_backward",
    "min_pool2d",
    "min_pool2d_backward",
    "register_backend",
    "save_autotune_cache",
    "set_autotune",
    "set_default_backend",
    "set_num_threads",
    "set_workspace_limit",
    "unregister_backend",
    "use_backend",
]
