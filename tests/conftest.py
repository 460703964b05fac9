"""Test configuration (set before JAX starts): float64, CPU, offline wandb, Agg backend."""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
# small LAPACK factorizations: one OpenBLAS thread (spinning workers stall on a loaded 2-core box)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
