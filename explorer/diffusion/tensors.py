"""The one broadcasting helper, and table look-ups by timestep.

Every per-step scalar (ᾱ_t, β̃_t, a posterior coefficient) reaches a batch of samples through
`append_dims`: a [B] tensor becomes [B, 1, ..., 1] with as many trailing ones as the sample has
dimensions, so that one function serves images ([B, C, H, W]) and point clouds ([B, 2]) alike.
"""

from __future__ import annotations

import numpy as np
import torch

TimestepLike = int | np.integer | torch.Tensor | np.ndarray


def append_dims(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton axes to `values` until it has `ndim` dimensions.

    A scalar or [B] tensor of per-sample values becomes [B, 1, ..., 1] (or [1, ..., 1] for a scalar),
    ready to broadcast against a [B, ...] batch with `ndim` dimensions.
    """
    if values.ndim > ndim:
        raise ValueError(f"cannot broadcast a tensor of {values.ndim} dimensions to {ndim} dimensions")
    if values.ndim == 0:
        return values.reshape((1,) * ndim)
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def as_timesteps(timestep: TimestepLike, num_train_timesteps: int) -> torch.Tensor:
    """Return 0-based timesteps as an int64 tensor (scalar or [B]) after checking they index the table.

    `timestep` is diffusers' 0-based timestep (see `indexing`): one int for the whole batch, or a
    [B] tensor of per-sample timesteps.
    """
    steps = torch.as_tensor(np.asarray(timestep) if isinstance(timestep, np.ndarray) else timestep)
    if steps.dtype.is_floating_point or steps.dtype == torch.bool or steps.dtype.is_complex:
        if steps.dtype.is_floating_point and torch.equal(steps, steps.round()):
            steps = steps.long()
        else:
            raise ValueError(f"timestep must be an integer index in [0, {num_train_timesteps - 1}]")
    steps = steps.long()
    if steps.ndim > 1:
        raise ValueError(f"timestep must be a scalar or a 1-D batch of timesteps, got shape {tuple(steps.shape)}")
    if steps.numel() and (int(steps.min()) < 0 or int(steps.max()) > num_train_timesteps - 1):
        raise ValueError(
            f"timestep must lie in [0, {num_train_timesteps - 1}] (diffusers' 0-based timestep); got {steps.tolist()}"
        )
    return steps


def gather(table: np.ndarray, timestep: TimestepLike, like: torch.Tensor) -> torch.Tensor:
    """Look up `table[timestep]` and shape it to broadcast against `like` ([B, ...]).

    `table` is a float64 array of length T indexed by the 0-based timestep. The result has the dtype
    (at least float32) and device of `like`, and `like.ndim` dimensions.
    """
    steps = as_timesteps(timestep, len(table))
    dtype = like.dtype if like.dtype.is_floating_point else torch.float32
    values = torch.from_numpy(np.asarray(np.asarray(table)[steps.cpu().numpy()])).to(device=like.device, dtype=dtype)
    if values.ndim == 1 and like.ndim >= 1 and values.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"got {values.shape[0]} per-sample timesteps for a batch of {like.shape[0]} samples")
    return append_dims(values, max(like.ndim, values.ndim))
