"""Do MoE experts specialise on structures? An expert × structure usage matrix and a specialisation score.

Each token is given the majority label of its reference voxels; every routed slot of the token (one per loop
and per top-k choice) counts once for (expert, label). The score is the mutual information between expert and
label over routed slots, I(E; S) in bits, also normalised by min(H(E), H(S)) so that 1 means the expert
determines the structure (or vice versa) and 0 means independence. Because a finite sample has positive MI
even under independence, the score is compared with a shuffled baseline: token labels are permuted across
tokens (each token keeps its routing) and the MI recomputed; the p-value is the share of permutations
reaching the observed MI.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def usage_matrix(expert_counts: np.ndarray, token_labels: np.ndarray, num_labels: int) -> np.ndarray:
    """(E, labels) routed slots per expert and token label; tokens with a negative label are left out."""
    counts = np.asarray(expert_counts, dtype=np.float64)
    token_labels = np.asarray(token_labels)
    return np.stack([counts[token_labels == label].sum(0) for label in range(num_labels)], axis=1)


def mutual_information(matrix: np.ndarray) -> float:
    """I(row; column) in bits of the joint distribution proportional to ``matrix`` (non-negative counts)."""
    joint = np.asarray(matrix, dtype=np.float64)
    total = joint.sum()
    if total <= 0:
        return 0.0
    joint = joint / total
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    present = joint > 0
    return float(max((joint[present] * np.log2(joint[present] / outer[present])).sum(), 0.0))


def entropy(distribution: np.ndarray) -> float:
    """Shannon entropy in bits of the distribution proportional to ``distribution``."""
    p = np.asarray(distribution, dtype=np.float64).ravel()
    p = p[p > 0] / p.sum() if p.sum() > 0 else p[:0]
    return float(-(p * np.log2(p)).sum())


def normalised_mutual_information(matrix: np.ndarray) -> float:
    """I(E; S) / min(H(E), H(S)) in [0, 1]; 0 when either marginal is constant."""
    matrix = np.asarray(matrix, dtype=np.float64)
    bound = min(entropy(matrix.sum(1)), entropy(matrix.sum(0)))
    return mutual_information(matrix) / bound if bound > 0 else 0.0


def specialisation(expert_counts: np.ndarray, token_labels: np.ndarray, labels: Sequence[int],
                   permutations: int = 1000, seed: int = 0) -> dict:
    """Usage matrix, MI and normalised MI over the tokens whose label is in ``labels``, with the shuffled
    baseline (``permutations`` label permutations; fixed ``seed`` so reports are reproducible)."""
    token_labels = np.asarray(token_labels)
    keep = np.isin(token_labels, list(labels))
    counts = np.asarray(expert_counts, dtype=np.float64)[keep]
    column = np.full(max(labels, default=0) + 1, -1)
    column[list(labels)] = np.arange(len(labels))  # matrix columns in the order of ``labels``
    relabelled = column[token_labels[keep]]
    matrix = usage_matrix(counts, relabelled, len(labels))
    observed = mutual_information(matrix)
    rng = np.random.default_rng(seed)
    shuffled = np.array([mutual_information(usage_matrix(counts, rng.permutation(relabelled), len(labels)))
                         for _ in range(permutations)])
    bound = min(entropy(matrix.sum(1)), entropy(matrix.sum(0)))
    return {
        "tokens": int(keep.sum()),
        "routed_slots": int(matrix.sum()),
        "matrix": matrix.astype(np.int64).tolist(),
        "share_of_structure": _normalise(matrix, axis=0).tolist(),  # columns sum to 1: where a structure goes
        "share_of_expert": _normalise(matrix, axis=1).tolist(),  # rows sum to 1: what an expert sees
        "mutual_information_bits": observed,
        "normalised_mutual_information": observed / bound if bound > 0 else 0.0,
        "shuffled_mutual_information_bits": {"mean": float(shuffled.mean()) if permutations else None,
                                             "std": float(shuffled.std()) if permutations else None,
                                             "permutations": permutations},
        "shuffled_normalised_mutual_information": float(shuffled.mean() / bound) if permutations and bound > 0
        else None,
        "p_value": float((1 + (shuffled >= observed - 1e-12).sum()) / (1 + permutations)) if permutations else None,
    }


def _normalise(matrix: np.ndarray, axis: int) -> np.ndarray:
    total = matrix.sum(axis, keepdims=True)
    return np.divide(matrix, total, out=np.zeros_like(matrix), where=total > 0)
