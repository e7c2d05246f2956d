"""Choose JAX's platform before JAX is imported, and say in one line what was chosen.

With the `cuda12` extra installed and no usable GPU, JAX prints a long CUDA initialisation
traceback before it falls back to the CPU. We probe the driver ourselves first and, when it
cannot run CUDA, pin JAX to the CPU so that the user sees one clear line instead.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from forecaster.interrupts import deferred_signals

log = logging.getLogger(__name__)

CUDA_PLUGIN_MODULES = ("jax_cuda12_plugin", "jax_cuda13_plugin")
NO_GPU_NOTE = "no usable GPU, running on CPU"


@dataclass(frozen=True)
class BackendInfo:
    backend: str
    devices: str
    jax_version: str
    jaxlib_version: str
    python_version: str


def cuda_plugin_installed() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in CUDA_PLUGIN_MODULES)


def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver or it cannot initialise."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def select_platform() -> None:
    """Pin JAX to the CPU when the CUDA plugin is installed but cannot run; call before importing jax.

    On a GPU, JAX would take 75 % of its memory at start: a second process (live beside train, a
    parallel sweep's jobs) would find none left on a 6 GB card. Our models need megabytes, so each
    process takes what it uses (set XLA_PYTHON_CLIENT_PREALLOCATE=true to restore JAX's default).
    """
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if "JAX_PLATFORMS" not in os.environ and cuda_plugin_installed() and cuda_device_count() == 0:
        os.environ["JAX_PLATFORMS"] = "cpu"
        log.warning(NO_GPU_NOTE)


def configure_jax(cache_dir: str, *, sync_dispatch: bool = False) -> None:
    """Call before the first JAX computation.

    The persistent compilation cache roughly halves cold start for CLI runs and sweep workers.
    Synchronous CPU dispatch cuts the p99 of one small jitted call several-fold (measured in
    forecaster/benchmarks/model.py); it suits per-candle inference, not training loops, which
    overlap the next batch's preparation with the running step.
    """
    with deferred_signals():
        import jax

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(Path(cache_dir).resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if sync_dispatch:
        jax.config.update("jax_cpu_enable_async_dispatch", False)


def describe() -> BackendInfo:
    import jax

    return BackendInfo(
        backend=jax.default_backend(),
        devices="[" + ", ".join(repr(d) for d in jax.devices()) + "]",
        jax_version=jax.__version__,
        jaxlib_version=importlib.metadata.version("jaxlib"),
        python_version=platform.python_version(),
    )
