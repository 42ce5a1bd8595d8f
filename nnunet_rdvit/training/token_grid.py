"""Choosing the token patch for an nnU-Net configuration and fitting the input patch to it."""

from __future__ import annotations

from typing import Sequence

from nnunet_rdvit.networks.patch_embed import check_token_size, round_up_to_multiple

# Stored in the plans' configuration so that training and inference (which rebuilds the network from
# the saved plans.json) agree on the token size without recomputing it.
TOKEN_SIZE_KEY = "rdvit_token_size"
MAX_TOKEN_EDGE = 16
MIN_TOKENS_PER_AXIS = 8


def default_token_size(patch_size: Sequence[int]) -> tuple[int, ...]:
    """Per axis, the largest power of two ≤ 16 that leaves at least 8 tokens along that axis (else 1).

    Gives the paper's 16×16 for ACDC 2d (256×224) and 2×16×16 for ACDC 3d_fullres (20×256×224): thin
    through-plane tokens follow nnU-Net's anisotropic patches automatically.
    """
    sizes = []
    for edge in patch_size:
        size = MAX_TOKEN_EDGE
        while size > 1 and edge // size < MIN_TOKENS_PER_AXIS:
            size //= 2
        sizes.append(size)
    return tuple(sizes)


def fit_plans_to_tokens(plans: dict, configuration: str, token_size: Sequence[int] | None) -> tuple[int, ...]:
    """Resolve the token size and round the configuration's patch size up to a multiple of it, in ``plans``.

    Must run before ``nnUNetTrainer.__init__`` so that everything nnU-Net derives from the plans (data
    loading, the saved plans.json used by the predictor) sees the adjusted patch size.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"configuration {configuration!r} is not in the plans; available: {sorted(plans['configurations'])}")
    resolved = PlansManager(plans).get_configuration(configuration)
    patch_size = list(resolved.patch_size)
    stored = resolved.configuration.get(TOKEN_SIZE_KEY)
    tokens = tuple(stored or token_size or default_token_size(patch_size))
    if len(tokens) != len(patch_size):
        raise ValueError(f"token size {tokens} has {len(tokens)} axes, but configuration {configuration!r} "
                         f"has a {len(patch_size)}D patch {tuple(patch_size)}")
    fitted = round_up_to_multiple(patch_size, tokens)
    check_token_size(fitted, tokens)
    entry = plans["configurations"][configuration]
    entry["patch_size"] = fitted
    entry[TOKEN_SIZE_KEY] = list(tokens)
    return tokens
