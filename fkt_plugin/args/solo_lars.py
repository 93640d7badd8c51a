"""solo-learn's LARS keywords in a recipe, translated to lightly's LARS."""

from __future__ import annotations

import warnings

from omegaconf import DictConfig, open_dict

# solo-learn's LARS keywords → lightly's LARS (None: lightly's LARS has no such option).
SOLO_LARS_KWARGS = {"eta": "trust_coefficient", "clip_lr": None, "exclude_bias_n_norm": None}


def translate_solo_lars_kwargs(optimizer: DictConfig) -> None:
    """Renames solo-learn's LARS kwargs in ``optimizer.kwargs`` to lightly's, in place, and
    warns about those lightly's LARS lacks (they are dropped)."""
    dropped = []
    with open_dict(optimizer):
        for key, ours in SOLO_LARS_KWARGS.items():
            if key not in optimizer.kwargs:
                continue
            value = optimizer.kwargs.pop(key)
            if ours is None:
                dropped.append(f"{key}={value}")
            else:
                optimizer.kwargs[ours] = value
    if dropped:
        warnings.warn(f"optimizer.kwargs {', '.join(dropped)}: solo-learn's LARS options that "
                      "lightly's LARS does not have (ignored)", stacklevel=3)
