"""The codec zoo: loss-swapped CompressAI hyperprior codecs (train, fine-tune, compress, evaluate,
rate-match), the ``.lar`` bitstream container and the ``CODECS`` provider registry.

Plain functions for the demo and other stages (imported lazily; ``import compressai`` is slow)::

    train_zoo(config, out_dir, data)              # codecs zoo
    evaluate(ckpts, images, out_csv)              # codecs evaluate
    plot_rd(results_csv, out_png)                 # codecs rd
    bd_rate(rate_a, metric_a, rate_b, metric_b)   # Bjøntegaard delta rate, %; bd_compare(file_a, file_b)
    match_rates(zoo, images, targets, out)        # codecs match -> STIMULI/manifest.csv
    load_checkpoint(path) -> (model, config)
    open_codec(path, device) -> Codec              # the one codec interface (interface.py)
    train(TrainConfig(...)); prepare_cache(images, out); zoo_status(out)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "train", "train_zoo": "zoo", "evaluate": "evaluate", "plot_rd": "rd", "bd_rate": "bdrate",
    "bd_metric": "bdrate", "bd_compare": "bdrate", "match_rates": "match", "load_checkpoint": "model",
    "save_checkpoint": "model", "read_config": "model", "HyperpriorCodec": "coder", "CODECS": "providers",
    "Condition": "providers", "Encoded": "providers", "calibrate_lambdas": "calibrate",
    "Codec": "interface", "open_codec": "interface", "resolve_device": "device", "TrainConfig": "train",
    "prepare_cache": "dataset", "zoo_status": "zoo", "EXECUTORS": "executors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
