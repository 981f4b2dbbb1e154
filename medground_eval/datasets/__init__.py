"""Data set loaders. Importing this package registers every loader under its ``--dataset`` name."""

from medground_eval.datasets import chestxray8, hf, jsonl, m3d_refseg, mscxr  # noqa: F401  # noqa: F401
from medground_eval.datasets.base import (
    DataError,
    LoadedDataset,
    SkippedRow,
    dataset_names,
    get_loader,
    register_dataset,
)

__all__ = ["DataError", "LoadedDataset", "SkippedRow", "dataset_names", "get_loader", "register_dataset"]
