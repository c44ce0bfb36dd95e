"""Old import path of transforms, cache, samplers and datasets, kept while importers move over.

Import from maskforge.learn.transforms, .cache, .samplers or .datasets instead.
"""

from maskforge.learn.cache import (
    CACHE_VERSION,
    CachedImages,
    build_caches,
    cache_key,
    cache_mean_std,
    train_cache_size,
)
from maskforge.learn.datasets import (
    ManifestDataset,
    TrainingData,
    default_workers,
    load_training_data,
    make_loader,
    read_stats,
)
from maskforge.learn.samplers import EpochSampler, ShardSampler
from maskforge.learn.transforms import eval_transform, to_model_input, train_transform

__all__ = [
    "CACHE_VERSION",
    "CachedImages",
    "EpochSampler",
    "ManifestDataset",
    "ShardSampler",
    "TrainingData",
    "build_caches",
    "cache_key",
    "cache_mean_std",
    "default_workers",
    "eval_transform",
    "load_training_data",
    "make_loader",
    "read_stats",
    "to_model_input",
    "train_cache_size",
    "train_transform",
]
