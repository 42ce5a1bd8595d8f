"""FLOPs of a call, counted by torch's ``FlopCounterMode`` with attention counted on every torch.

torch's counter knows the CUDA attention kernels, but some releases (2.14.1, for one) have no formula for
the CPU kernel ``scaled_dot_product_attention`` dispatches to (``_scaled_dot_product_flash_attention_for_cpu``)
and silently count attention as 0 FLOPs. :func:`count_flops` adds the standard formula for every fused
attention op the running torch has but does not count, and leaves the ops it counts alone.

Convention (torch's): 2 FLOPs per multiply-add. Attention forward = Q·Kᵀ and P·V, i.e.
2·B·H·Nq·Nk·(Dqk + Dv); backward = twice that (dP, dV, dQ, dK). Softmax, norms and activations are not
counted.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry

# Fused attention ops (forward, backward) that torch's counter may lack, by aten name.
_ATTENTION_OPS = (
    ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention_for_cpu_backward"),
    ("_scaled_dot_product_fused_attention_overrideable", "_scaled_dot_product_fused_attention_overrideable_backward"),
)


def attention_forward_flops(query_shape: tuple[int, ...], key_shape: tuple[int, ...],
                            value_shape: tuple[int, ...]) -> int:
    """FLOPs of softmax(Q Kᵀ) V for (..., Nq, D) queries, (..., Nk, D) keys and (..., Nk, Dv) values."""
    *batch, n_queries, qk_dim = query_shape
    n_keys, value_dim = key_shape[-2], value_shape[-1]
    return 2 * math.prod(batch) * n_queries * n_keys * (qk_dim + value_dim)


def _forward_formula(query_shape, key_shape, value_shape, *args: Any, **kwargs: Any) -> int:
    return attention_forward_flops(query_shape, key_shape, value_shape)


def _backward_formula(grad_out_shape, query_shape, key_shape, value_shape, *args: Any, **kwargs: Any) -> int:
    return 2 * attention_forward_flops(query_shape, key_shape, value_shape)


def missing_attention_formulas() -> dict[Any, Callable[..., int]]:
    """Formulas for the fused attention ops this torch has but its FLOP counter does not count."""
    formulas: dict[Any, Callable[..., int]] = {}
    for forward_name, backward_name in _ATTENTION_OPS:
        for name, formula in ((forward_name, _forward_formula), (backward_name, _backward_formula)):
            packet = getattr(torch.ops.aten, name, None)
            if packet is not None and packet not in flop_registry and packet.default not in flop_registry:
                formulas[packet] = formula
    return formulas


def count_flops(call: Callable[[], object]) -> int:
    """Total FLOPs of ``call()``: matrix products, convolutions and attention."""
    with FlopCounterMode(display=False, custom_mapping=missing_attention_formulas()) as counter:
        call()
    return counter.get_total_flops()
