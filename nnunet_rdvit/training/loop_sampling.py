"""Random loop counts for recurrent-depth training: one log-normal Poisson draw per training step.

Geiping et al. 2025 ("Scaling up test-time compute with latent reasoning: a recurrent depth approach") draw
the recurrence count of every training step as r = 1 + Poisson(λ), log λ ~ N(log r̄ − σ²/2, σ), σ = 1/2:
a heavy-tailed distribution around a mean, so the model trains at many depths and, they report, keeps
improving when run deeper at test time than it mostly trained. Here:

* **Mean.** r̄ = T − 1, so E[r] = T before clipping: on average the same training compute as the fixed-T
  full model, which keeps the ablation a fair comparison.
* **Upper clip 2T.** Training runs every loop densely and back-propagates through all of them (Geiping et al.
  back-propagate through the last 8 iterations only), so activation memory and step time grow with r; the
  clip bounds a step at twice the fixed-T cost and still trains loops beyond T — which reuse the last LoRA
  scale, exactly what inference beyond T does.
* **Lower bound** the network's ``min_loops`` (1 by default). With ACT, a one-loop step (3 % of draws for
  T = 6) halts every token at once: it trains the block, while the halting unit gets a zero gradient and the
  ponder loss is constant for that step.

For T = 6 (σ = 1/2) the clipped counts have mean 5.8, median 5 and standard deviation 3.0; 5 % of draws are
lowered to 12. A draw depends only on (seed, epoch, iteration), so every DDP rank runs the same number of
loops and a resumed training repeats the draws it would have made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoopCountDistribution:
    """r = clip(1 + Poisson(λ), low, high), log λ ~ N(log(mean − 1) − σ²/2, σ)."""

    mean: float  # E[r] before clipping
    low: int
    high: int
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if not self.mean > 1:
            raise ValueError(f"random loop counts need a mean above 1 loop (T ≥ 2), got {self.mean}")
        if not 1 <= self.low <= self.high:
            raise ValueError(f"loop-count range must satisfy 1 ≤ low ≤ high, got [{self.low}, {self.high}]")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")

    @classmethod
    def around(cls, num_loops: int, min_loops: int = 1, max_factor: int = 2,
               sigma: float = 0.5) -> LoopCountDistribution:
        """The distribution for a network trained with T = ``num_loops`` (see the module docstring)."""
        return cls(float(num_loops), min_loops, max(min_loops, max_factor * num_loops), sigma)

    def sample(self, *key: int) -> int:
        """The count for ``key`` (e.g. seed, epoch, iteration): the same key always gives the same count."""
        rng = np.random.default_rng(list(key))
        rate = math.exp(rng.normal(math.log(self.mean - 1) - self.sigma ** 2 / 2, self.sigma))
        return int(np.clip(1 + rng.poisson(rate), self.low, self.high))
