"""``analyze``'s statistics on constructed inputs: token categories, expert specialisation, paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_rdvit.analysis.depth import dice_per_structure
from nnunet_rdvit.analysis.dynamics import training_dynamics
from nnunet_rdvit.analysis.experts import mutual_information, normalised_mutual_information, specialisation
from nnunet_rdvit.analysis.halting import ALL_STRUCTURES, case_halting, paired_test
from nnunet_rdvit.analysis.token_labels import (UNLABELLED, any_boundary_token_mask, any_interior_token_mask,
                                                background_token_mask, boundary_token_mask, interior_token_mask,
                                                majority_label, token_label_histogram)
from nnunet_rdvit.analysis.tokens import CaseTokens

# 6×6 voxels, 2×2 tokens → a 3×3 token grid. Token (row, column) covers rows 2r..2r+1, columns 2c..2c+1.
LABELS = np.array([
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0],  # token (0, 1): background + one voxel of 1 → boundary of 1
    [1, 1, 2, 2, 0, 0],  # token (1, 0): only 1 → interior of 1; token (1, 1): only 2 → interior of 2
    [1, 1, 2, 2, 0, 0],
    [1, 2, 2, 2, UNLABELLED, UNLABELLED],  # token (2, 0): 1 and 2 → boundary of both; (2, 2): padding only
    [2, 2, 2, 2, UNLABELLED, UNLABELLED],
])


def test_token_histogram_counts_each_tokens_voxels_and_ignores_padding() -> None:
    histogram = token_label_histogram(LABELS, (2, 2), 3)
    assert histogram.shape == (3, 3, 3)
    assert histogram[0, 1].tolist() == [3, 1, 0]
    assert histogram[2, 0].tolist() == [0, 1, 3]
    assert histogram[2, 2].tolist() == [0, 0, 0]  # padding is not counted
    assert histogram.sum() == (LABELS >= 0).sum()
    assert majority_label(histogram).tolist() == [[0, 0, 0], [1, 2, 0], [2, 2, UNLABELLED]]


def test_token_histogram_is_dimension_generic() -> None:
    volume = np.zeros((2, 4, 4), dtype=int)
    volume[1, :2, 2:] = 1
    histogram = token_label_histogram(volume, (2, 2, 2), 2)
    assert histogram.shape == (1, 2, 2, 2)
    assert histogram[0, 0, 1].tolist() == [4, 4] and histogram[0, 1, 1].tolist() == [8, 0]


def test_token_histogram_refuses_a_token_size_that_does_not_tile() -> None:
    with pytest.raises(ValueError, match="must tile"):
        token_label_histogram(LABELS, (4, 4), 3)


def test_boundary_interior_and_background_tokens_on_a_hand_made_grid() -> None:
    histogram = token_label_histogram(LABELS, (2, 2), 3)
    grid = lambda mask: mask.astype(int).tolist()  # noqa: E731
    assert grid(boundary_token_mask(histogram, 1)) == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert grid(interior_token_mask(histogram, 1)) == [[0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert grid(boundary_token_mask(histogram, 2)) == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    assert grid(interior_token_mask(histogram, 2)) == [[0, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert grid(background_token_mask(histogram)) == [[1, 0, 1], [0, 0, 1], [0, 0, 0]]
    assert grid(any_boundary_token_mask(histogram)) == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert grid(any_interior_token_mask(histogram)) == [[0, 0, 0], [1, 1, 0], [0, 1, 0]]


def test_case_halting_means_per_category() -> None:
    histogram = token_label_histogram(LABELS, (2, 2), 3).reshape(-1, 3)
    loops = np.array([[1, 5, 1], [2, 3, 1], [6, 4, 9]]).reshape(-1)  # the padding token's 9 must not count
    result = case_halting(CaseTokens("case", histogram, loops, None), {"one": 1, "two": 2})
    assert result["background"] == {"mean_loops": 1.0, "tokens": 3}
    assert result["structures"]["one"]["boundary"] == {"mean_loops": 5.5, "tokens": 2}
    assert result["structures"]["one"]["interior"] == {"mean_loops": 2.0, "tokens": 1}
    assert result["structures"]["two"]["boundary"] == {"mean_loops": 6.0, "tokens": 1}
    assert result["structures"]["two"]["interior"] == {"mean_loops": 3.5, "tokens": 2}
    assert result["structures"][ALL_STRUCTURES]["boundary"]["mean_loops"] == 5.5
    assert result["structures"][ALL_STRUCTURES]["interior"]["mean_loops"] == 3.0


def test_paired_test_gives_the_direction_and_a_small_p_for_a_consistent_difference() -> None:
    rng = np.random.default_rng(0)
    interior = rng.uniform(1.5, 2.5, 12)
    boundary = interior + rng.uniform(0.2, 0.6, 12)
    result = paired_test(boundary.tolist(), interior.tolist())
    assert result["pairs"] == 12 and result["first_greater"] == 12 and result["mean_difference"] > 0
    assert result["p_value"] < 0.001
    reverse = paired_test(interior.tolist(), boundary.tolist())
    assert reverse["mean_difference"] < 0 and reverse["first_greater"] == 0
    assert reverse["p_value"] == pytest.approx(result["p_value"])


def test_paired_test_skips_missing_pairs_and_handles_degenerate_input() -> None:
    result = paired_test([2.0, None, 3.0], [1.0, 1.0, None])
    assert result["pairs"] == 1 and "fewer than 6 pairs" in result["note"]
    assert paired_test([None], [1.0])["p_value"] is None
    same = paired_test([1.0, 2.0], [1.0, 2.0])
    assert same["p_value"] == 1.0 and same["mean_difference"] == 0.0


def test_perfectly_specialised_experts_score_one_and_beat_the_shuffled_baseline() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 4000)
    counts = np.zeros((4000, 4))
    counts[np.arange(4000), labels] = 6  # every slot of a label-s token goes to expert s
    result = specialisation(counts, labels, [0, 1, 2, 3], permutations=100)
    assert result["normalised_mutual_information"] == pytest.approx(1.0)
    assert result["shuffled_normalised_mutual_information"] < 0.01
    assert result["p_value"] == pytest.approx(1 / 101)
    assert np.allclose(np.asarray(result["share_of_structure"]), np.eye(4))


def test_shuffled_or_independent_routing_scores_near_zero() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 4000)
    counts = np.zeros((4000, 4))
    counts[np.arange(4000), rng.permutation(labels)] = 6  # routing carries no information about the token
    result = specialisation(counts, labels, [0, 1, 2, 3], permutations=100)
    assert result["normalised_mutual_information"] < 0.01
    assert result["p_value"] > 0.01


def test_specialisation_restricted_to_structures_leaves_background_tokens_out() -> None:
    labels = np.array([0, 0, 1, 2, 3, UNLABELLED])
    counts = np.eye(4)[[0, 0, 1, 2, 3, 3]] * 2
    result = specialisation(counts, labels, [1, 2, 3], permutations=0)
    assert result["tokens"] == 3 and np.asarray(result["matrix"]).shape == (4, 3)
    assert result["normalised_mutual_information"] == pytest.approx(1.0)
    assert result["p_value"] is None


def test_mutual_information_of_known_joint_distributions() -> None:
    assert mutual_information(np.eye(2)) == pytest.approx(1.0)  # one bit
    assert mutual_information(np.ones((3, 3))) == pytest.approx(0.0)
    assert normalised_mutual_information(np.array([[5.0, 0.0], [0.0, 0.0]])) == 0.0  # constant marginals


def test_dice_per_structure_with_an_absent_structure() -> None:
    reference = np.array([[1, 1, 0], [2, 2, 0]])
    prediction = np.array([[1, 0, 0], [2, 2, 2]])
    scores = dice_per_structure(prediction, reference, {"a": 1, "b": 2, "c": 3})
    assert scores["a"] == pytest.approx(2 / 3) and scores["b"] == pytest.approx(0.8) and scores["c"] is None
    assert scores["mean"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_dynamics_fall_back_to_the_printed_training_log(tmp_path) -> None:
    (tmp_path / "training_log_2025_1_1_00_00_00.txt").write_text(
        "2025-01-01 00:00:00.000001: Epoch 0 \n"
        "2025-01-01 00:00:01.000001: ponder_time: 2.6 \n"
        "2025-01-01 00:00:01.000002: expert_load: [0.5, 0.5] \n"
        "2025-01-01 00:00:02.000001: train_loss -0.1 \n"
        "2025-01-01 00:00:03.000001: Epoch 1 \n"
        "2025-01-01 00:00:04.000001: ponder_time: 1.4 \n"
        "2025-01-01 00:00:04.000002: expert_load: [0.75, 0.25] \n"
        "2025-01-01 00:00:05.000001: train_loss -0.3 \n")
    dynamics = training_dynamics(tmp_path, "checkpoint_final.pth")
    assert dynamics["available"] and dynamics["epochs"] == 2
    assert dynamics["series"]["ponder_time"] == [2.6, 1.4]
    assert dynamics["first_and_last"]["ponder_time"] == {"first": 2.6, "last": 1.4}
    assert dynamics["first_and_last"]["expert_load_max_over_min"] == {"first": 1.0, "last": 3.0}
    assert not training_dynamics(tmp_path / "missing", "checkpoint_final.pth")["available"]
