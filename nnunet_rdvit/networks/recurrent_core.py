"""The recurrent-depth core: one shared block looped T times with LTI injection, depth-wise LoRA and ACT."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.block import TransformerBlock, make_norm
from nnunet_rdvit.networks.moe import RoutingStats

# log_dt + log_A is clamped here before A = exp(-exp(x)): inside this range A is strictly inside
# (0, 1) in fp32 (exp(-e^4) ≈ 2e-24, exp(-e^-15) ≈ 1 - 3e-7), outside it A would round to 0 or 1.
_LOG_RATE_RANGE = (-15.0, 4.0)


def loop_embedding(loop: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Parameter-free sinusoidal embedding of the loop index on the first D/8 channels (fp32).

    Parameter-free so that loops beyond the trained T still get a meaningful, distinct signal.
    """
    width = max(2, (dim // 8) // 2 * 2)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(width // 2, device=device, dtype=torch.float32) / (width // 2))
    angles = loop * freqs
    emb = torch.zeros(dim, device=device, dtype=torch.float32)
    emb[: width // 2] = torch.sin(angles)
    emb[width // 2 : width] = torch.cos(angles)
    return emb


class DepthwiseLoRA(nn.Module):
    """delta = up((down(u) ⊙ s_t)): one shared low-rank pair, one rank-r scale vector per loop.

    Loops beyond the trained count reuse the last scale, which is what lets inference run deeper.
    ``up`` starts at zero (see RecurrentCore.reset_adaptive_parameters), as in LoRA.

    Args:
        dim: token width D.
        rank: r, the width of the shared low-rank pair.
        num_loops: T, the number of per-loop scale vectors.
    """

    def __init__(self, dim: int, rank: int, num_loops: int):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim, bias=False)
        self.scales = nn.Parameter(torch.ones(num_loops, rank))

    def forward(self, u: torch.Tensor, loop: int) -> torch.Tensor:
        scale = self.scales[min(loop, self.scales.shape[0] - 1)]
        return self.up(self.down(u) * scale)


class LTIInjection(nn.Module):
    """h ← A ⊙ h + B ⊙ e + u with A = exp(−exp(log_dt + log_A)) ∈ (0, 1) per channel.

    The bound makes the *linear* carry contractive for every parameter value; the block itself is
    nonlinear, so this is a stabiliser, not a convergence guarantee. A is computed in fp32 because in
    bf16 exp(−exp(x)) rounds to 1 and the bound is lost; the state update is then promoted to fp32.

    Args:
        dim: token width D.
        injection_init: initial value of every entry of B, the weight of the embedded input e.
    """

    def __init__(self, dim: int, injection_init: float = 0.1):
        super().__init__()
        self.log_A = nn.Parameter(torch.zeros(dim))
        self.log_dt = nn.Parameter(torch.zeros(()))
        self.B = nn.Parameter(torch.full((dim,), injection_init))

    def decay(self) -> torch.Tensor:
        log_rate = (self.log_dt.float() + self.log_A.float()).clamp(*_LOG_RATE_RANGE)
        return torch.exp(-torch.exp(log_rate))

    def forward(self, h: torch.Tensor, e: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        # fused multiply-adds: fewer full-size temporaries in forward and backward than A*h + B*e + u
        return torch.addcmul(torch.addcmul(u.float(), self.B.float(), e.float()), self.decay(), h.float())


class RecurrentCore(nn.Module):
    """Applies one shared :class:`TransformerBlock` up to T times, halting per token with ACT.

    Each loop t: u = Block(Norm(h + loopemb(t) + e)); u += LoRA_t(u); h ← A h + B e + u (or h ← u
    without LTI). ACT: p_t = σ(Linear(h)); a running token adds weight p_t, or the remainder 1 − Σw at
    the loop where Σw + p_t would reach the threshold (or at the last loop) and halts. Halted tokens are
    frozen but stay keys/values. The loop stops once every token has halted. Output = Σ_t w_t h_t
    (without ACT: h after T loops).

    Because halted tokens are frozen, a loop need only compute the running ones: ``sparse_act`` runs
    queries, feed-forward/MoE, LoRA, injection and halting for running tokens only (keys and values
    for all), which equals the dense execution — every token computed, halted ones discarded — up to
    floating-point rounding. ``None`` (default) chooses sparse outside training, i.e. in nnU-Net's
    validation and predictor; training stays dense (static shapes). One difference: in a dense loop the
    MoE router also sees the halted tokens, so its balance and z-losses average over all tokens.

    Args:
        block: the shared block, applied at every loop.
        dim: token width D.
        num_loops: T, the loops it is built and trained with; a call may run more (depth extrapolation).
        lora_rank: rank of the depth-wise LoRA (one shared pair, a scale vector per loop); 0 turns it off.
        act: build the halting unit and halt per token (ACT); ``False`` runs every token T loops.
        act_threshold: cumulative halting weight at which a token halts.
        halting_bias_init: initial bias of the halting unit (0: p ≈ 0.5; negative: more loops at first).
        min_loops: loops every token runs before it may halt.
        lti: LTI-stable state injection h ← A h + B e + u; ``False``: h ← u.
        norm: "layernorm" or "rmsnorm", for the loop input's norm.
        grad_checkpointing: recompute each loop in the backward pass instead of storing its activations.
        sparse_act: compute running tokens only (``True``), every token (``False``), or sparse outside
            training only (``None``).
        halting_prior: a per-loop halting probability in (0, 1) whose KL to each running token's p_t is
            returned as ``halting_prior_loss`` (keeps ACT out of its one-loop dead zone); ``None``: off.
    """

    def __init__(
        self,
        block: TransformerBlock,
        dim: int,
        *,
        num_loops: int = 6,
        lora_rank: int = 8,
        act: bool = True,
        act_threshold: float = 0.99,
        halting_bias_init: float = 0.0,
        min_loops: int = 1,
        lti: bool = True,
        norm: str = "layernorm",
        grad_checkpointing: bool = False,
        sparse_act: bool | None = None,
        halting_prior: float | None = None,
    ):
        super().__init__()
        if num_loops < 1:
            raise ValueError(f"num_loops must be ≥ 1, got {num_loops}")
        if not 1 <= min_loops <= num_loops:
            raise ValueError(f"min_loops must be between 1 and num_loops={num_loops}, got {min_loops}")
        if not 0.0 < act_threshold <= 1.0:
            raise ValueError(f"act_threshold must be in (0, 1], got {act_threshold}")
        if halting_prior is not None and not 0.0 < halting_prior < 1.0:
            raise ValueError(f"halting_prior must be in (0, 1) (a per-loop halting probability) or None, got {halting_prior}")
        self.block = block
        self.dim = dim
        self.num_loops = num_loops
        self.act = act
        self.act_threshold = act_threshold
        self.min_loops = min_loops
        self.grad_checkpointing = grad_checkpointing
        self.sparse_act = sparse_act
        self.input_norm = make_norm(norm, dim)
        self.lora = DepthwiseLoRA(dim, lora_rank, num_loops) if lora_rank > 0 else None
        self.injection = LTIInjection(dim) if lti else None
        self.halting_bias_init = halting_bias_init
        self.halting_prior = halting_prior
        self.halting = nn.Linear(dim, 1) if act else None
        self.reset_adaptive_parameters()

    def reset_adaptive_parameters(self) -> None:
        """Initial halting bias (sets the initial ponder time) and a LoRA that starts as the identity."""
        if self.halting is not None:
            nn.init.trunc_normal_(self.halting.weight, std=0.02)
            nn.init.constant_(self.halting.bias, self.halting_bias_init)
        if self.lora is not None:
            nn.init.zeros_(self.lora.up.weight)

    def uses_sparse_act(self) -> bool:
        return self.sparse_act if self.sparse_act is not None else not self.training

    def forward(
        self, e: torch.Tensor, n_loops: int | None = None, act: bool | None = None,
        states: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, AuxOutputs]:
        """``e``: embedded tokens (B, N, D). Returns the output tokens and the ACT/MoE auxiliaries.

        ``n_loops`` overrides T (it may exceed the trained count). ``act=False`` switches halting off for
        this call: every token runs all loops and the output is the final state — the fixed-depth reading
        that depth-extrapolation analyses compare ACT against. ``states``, if given, receives the state h
        after each of the ``n_loops`` loops (fp32, (B, N, D)); loops skipped because every token had halted
        repeat the final, frozen state, so it always gets ``n_loops`` entries.
        """
        loops = self.num_loops if n_loops is None else int(n_loops)
        if loops < self.min_loops:
            raise ValueError(f"n_loops={loops} is below the configured min_loops={self.min_loops}")
        halting = self.act if act is None else bool(act)
        if halting and self.halting is None:
            raise ValueError("act=True needs a core built with ACT (act=True); this one has no halting unit")
        batch, n_tokens, _ = e.shape
        h = e.float()  # the state is carried in fp32 (see LTIInjection)
        running = torch.ones(batch, n_tokens, dtype=torch.bool, device=e.device)
        cumulative = torch.zeros(batch, n_tokens, dtype=torch.float32, device=e.device)
        remainder = torch.zeros_like(cumulative)
        halting_steps = torch.zeros(batch, n_tokens, dtype=torch.long, device=e.device)
        output = torch.zeros_like(h)
        prior_divergence = torch.zeros_like(cumulative)
        routing_log: list[RoutingStats] = []
        expert_counts = None
        loops_executed = 0
        sparse = self.uses_sparse_act()
        all_running = True

        for loop in range(loops):
            running_mask = None if all_running else running  # None while every token runs
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                h, p, routing = checkpoint(self._step, h, e, loop, running_mask, sparse, halting,
                                           use_reentrant=False)
            else:
                h, p, routing = self._step(h, e, loop, running_mask, sparse, halting)
            loops_executed += 1
            if states is not None:
                states.append(h)
            halting_steps = halting_steps + running.long()
            if routing is not None:
                routing_log.append(routing)
                expert_counts = self._count_experts(expert_counts, routing, running)
            if not halting:
                continue
            if self.halting_prior is not None:
                prior_divergence = prior_divergence + torch.where(running, bernoulli_kl(p, self.halting_prior), 0.0)
            may_halt = loop + 1 >= self.min_loops
            halt_now = running & ((loop == loops - 1) | (may_halt & (cumulative + p >= self.act_threshold)))
            weight = torch.where(halt_now, 1.0 - cumulative, p)
            output = torch.addcmul(output, weight.unsqueeze(-1), h)
            cumulative = cumulative + weight
            remainder = torch.where(halt_now, weight, remainder)
            running = running & ~halt_now
            n_running = int(running.sum())
            if n_running == 0:
                break
            all_running = n_running == running.numel()

        if states is not None:
            states.extend([h] * (loops - loops_executed))
        steps = halting_steps.float()
        aux = AuxOutputs(
            ponder_loss=(steps + remainder).mean() if halting else None,
            ponder_time=steps.mean(),
            halting_prior_loss=prior_divergence.mean() if halting and self.halting_prior is not None else None,
            halting_steps=halting_steps,
            loops_executed=loops_executed,
            balance_loss=torch.stack([r.balance_loss for r in routing_log]).mean() if routing_log else None,
            z_loss=torch.stack([r.z_loss for r in routing_log]).mean() if routing_log else None,
            expert_counts=expert_counts,
        )
        if expert_counts is not None and self.training:
            self.block.ffn.record_counts(expert_counts.flatten(0, -2).sum(0))
        return (output if halting else h), aux

    def _step(
        self, h: torch.Tensor, e: torch.Tensor, loop: int, running: torch.Tensor | None, sparse: bool,
        halting: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, RoutingStats | None]:
        """One loop. ``running``: mask of the running tokens, None while all run; ``sparse``: compute
        only those (else all tokens, discarding the halted ones' results); ``halting``: compute p.

        Returns the new state (B, N, D) — running tokens updated, halted ones unchanged — the halting
        probability (B, N), 0 where halted (and everywhere without halting), and the running tokens' routing.
        """
        computed = running if sparse else None  # None: every token
        x = self.input_norm(h + e + loop_embedding(loop, self.dim, h.device))  # all tokens: keys/values
        u, routing = self.block(x, computed)
        u = u.flatten(0, -2)
        if self.lora is not None:
            u = u + self.lora(u, loop)
        h_new = self.injection(_take(h, computed), _take(e, computed), u) if self.injection is not None else u
        h = _merge(h, h_new.float(), running, computed)
        p = torch.zeros_like(h[..., 0])
        if halting:
            p = _merge(p, torch.sigmoid(self.halting(h_new).squeeze(-1).float()), running, computed)
        if routing is not None and computed is None and running is not None:
            routing = dataclasses.replace(routing, expert_index=routing.expert_index[running.flatten()])
        return h, p, routing

    def _count_experts(
        self, counts: torch.Tensor | None, routing: RoutingStats, running: torch.Tensor
    ) -> torch.Tensor:
        """Adds this loop's top-k choices to the per-token expert histogram (B, N, E)."""
        num_experts = self.block.ffn.num_experts
        if counts is None:
            counts = torch.zeros(*running.shape, num_experts, dtype=torch.long, device=running.device)
        one_hot = torch.nn.functional.one_hot(routing.expert_index, num_experts).sum(1)
        return counts.index_put((running,), counts[running] + one_hot)


def bernoulli_kl(p: torch.Tensor, prior: float, eps: float = 1e-6) -> torch.Tensor:
    """KL(Bernoulli(p) || Bernoulli(prior)), elementwise."""
    p = p.clamp(eps, 1 - eps)
    return p * torch.log(p / prior) + (1 - p) * torch.log((1 - p) / (1 - prior))


def _take(tokens: torch.Tensor, computed: torch.Tensor | None) -> torch.Tensor:
    """The computed tokens of (B, N, ...) as (M, ...), in the order the block returns them."""
    return tokens.flatten(0, 1) if computed is None else tokens[computed]


def _merge(
    base: torch.Tensor, values: torch.Tensor, running: torch.Tensor | None, computed: torch.Tensor | None
) -> torch.Tensor:
    """Write the computed tokens' ``values`` (M, ...) into ``base`` (B, N, ...) where tokens are running."""
    if computed is not None:  # sparse: exactly the running tokens were computed
        return base.index_put((computed,), values)
    values = values.view_as(base)
    if running is None:
        return values
    return torch.where(running.view(*running.shape, *(1,) * (base.dim() - 2)), values, base)
