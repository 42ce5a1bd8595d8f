"""The convolutional encoder (hybrid embedding) and the decoder's skips, 2D and anisotropic 3D."""

from __future__ import annotations

import pytest
import torch

from nnunet_rdvit.networks import RDViT, ViT
from nnunet_rdvit.networks.conv_encoder import ConvEncoder, default_encoder_channels, upsampling_schedule

SMALL = {"embed_dim": 32, "num_heads": 2}


def test_encoder_downsamples_along_the_token_schedule_read_backwards() -> None:
    encoder = ConvEncoder(1, (2, 16, 16), (4, 8, 8, 16))
    assert upsampling_schedule((2, 16, 16))[::-1][:3] == encoder.strides == [(1, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert encoder.downsampling() == (1, 8, 8)
    features = encoder(torch.randn(1, 1, 4, 32, 32))
    assert [tuple(f.shape[1:]) for f in features] == [(4, 4, 32, 32), (8, 4, 16, 16), (8, 4, 8, 8), (16, 4, 4, 4)]


def test_encoder_refuses_more_stages_than_the_token_allows() -> None:
    with pytest.raises(ValueError, match="at most 2"):
        ConvEncoder(1, (4, 4), (4, 8, 16, 32))
    with pytest.raises(ValueError, match="positive integers"):
        ConvEncoder(1, (4, 4), (4, 0))


@pytest.mark.parametrize("patch, tokens, channels", [((32, 32), (8, 8), (4, 8)), ((32, 32), (8, 8), (4, 8, 8, 16)),
                                                     ((8, 32, 32), (2, 8, 8), (4, 8, 16))])
@pytest.mark.parametrize("decoder", ["light", "progressive"])
def test_hybrid_networks_tokenise_the_last_feature_map(patch, tokens, channels, decoder) -> None:
    for network in (RDViT(2, 3, patch, tokens, encoder_channels=channels, decoder=decoder, num_loops=2, **SMALL),
                    ViT(2, 3, patch, tokens, encoder_channels=channels, decoder=decoder, depth=2, **SMALL)):
        scale = network.encoder.downsampling()
        assert network.patch_embed.token_size == tuple(t // s for t, s in zip(tokens, scale))
        assert network.patch_embed.proj.in_channels == channels[-1]
        x = torch.randn(2, 2, *patch)
        tokens_out, grid, skips = network.embed(x)
        assert grid == tuple(p // t for p, t in zip(patch, tokens)) and len(skips) == len(channels)
        out = network(x)
        assert out.shape == (2, 3, *patch)
        out.sum().backward()
        assert network.encoder.stem[0].weight.grad.abs().sum() > 0, "the full-resolution stem must get a gradient"


def test_every_skip_level_is_read_by_the_progressive_decoder() -> None:
    network = RDViT(1, 2, (32, 32), (8, 8), encoder_channels=(4, 6, 10), num_loops=1, **SMALL)
    # decoder stages run coarse to fine: 1/4 (skip of 10), 1/2 (skip of 6), full resolution (skip of 4)
    widths = [conv[0].in_channels - up.out_channels for up, conv in zip(network.decoder.up, network.decoder.convs)]
    assert widths == [10, 6, 4]


def test_the_default_encoder_is_the_hybrid_one_as_deep_as_the_token_allows() -> None:
    assert default_encoder_channels((16, 16)) == (16, 32, 64, 96)
    assert default_encoder_channels((2, 16, 16)) == (16, 32, 64, 96)
    assert default_encoder_channels((4, 4)) == (16, 32, 64)
    assert default_encoder_channels((1, 1)) == (16,)
    for network in (RDViT(1, 2, (32, 32), (4, 4), **SMALL), ViT(1, 2, (32, 32), (4, 4), depth=1, **SMALL)):
        assert network.encoder.channels == (16, 32, 64) and network.patch_embed.token_size == (1, 1)
        assert network(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_the_stem_only_encoder_exists_only_where_something_reads_it() -> None:
    assert RDViT(1, 2, (32, 32), (8, 8), encoder_channels=(8,), **SMALL).encoder.channels == (8,)  # the decoder's skip
    assert RDViT(1, 2, (32, 32), (8, 8), encoder_channels=(8,), decoder="light", **SMALL).encoder is None
    no_encoder = ViT(1, 2, (32, 32), (8, 8), encoder_channels=(), depth=1, **SMALL)
    assert no_encoder.encoder is None and no_encoder(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)
