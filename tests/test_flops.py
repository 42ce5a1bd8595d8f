"""The FLOP counter counts attention on the running torch, whichever kernel SDPA dispatches to."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nnunet_rdvit.flops import attention_forward_flops, count_flops
from nnunet_rdvit.networks.attention import Attention


def test_attention_forward_is_counted_as_two_matrix_products() -> None:
    q, k, v = torch.randn(2, 3, 17, 8), torch.randn(2, 3, 11, 8), torch.randn(2, 3, 11, 4)
    expected = 2 * 2 * 3 * 17 * 11 * 8 + 2 * 2 * 3 * 17 * 11 * 4
    assert attention_forward_flops(q.shape, k.shape, v.shape) == expected
    with torch.no_grad():
        assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == expected


def test_attention_backward_is_counted_as_twice_the_forward() -> None:
    q = torch.randn(1, 2, 9, 8, requires_grad=True)
    forward = attention_forward_flops(q.shape, q.shape, q.shape)
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward()) == 3 * forward


def test_token_sparse_attention_module_counts_queries_times_keys() -> None:
    dim, heads, n_queries, n_keys = 16, 2, 5, 12
    attention = Attention(dim, heads)
    x, context = torch.randn(1, n_queries, dim), torch.randn(1, n_keys, dim)
    projections = 2 * n_queries * dim * dim + 2 * n_keys * dim * 2 * dim + 2 * n_queries * dim * dim
    with torch.no_grad():
        assert count_flops(lambda: attention(x, context)) == projections + 2 * 2 * n_queries * n_keys * dim
