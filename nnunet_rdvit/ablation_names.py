"""Names of the RD-ViT ablation trainers and what each one changes against the full model.

Free of torch and nnU-Net imports, like :mod:`nnunet_rdvit.fraction_trainer_names`: the experiment runner's
``--ablation`` and the ablation table use it without paying for them. The classes are in
:mod:`nnunet_rdvit.training.ablation_trainers`, each registered with ``@register_trainer(ablation=True)``, which
checks it against this list (:mod:`nnunet_rdvit.training.registry`).
"""

from __future__ import annotations

FULL_MODEL = "RDViTTrainer"
# Ablation trainer -> what it changes, as the ablation table shows it. Order = the table's order.
ABLATIONS: dict[str, str] = {
    "RDViTTrainer_NoACT": "no ACT: every token runs all T loops, no ponder loss",
    "RDViTTrainer_NoLoRA": "no depth-wise LoRA: loops differ only by the loop embedding",
    "RDViTTrainer_NoLTI": "no LTI injection: plain carry h ← u",
    "RDViTTrainer_SingleLoop": "one loop (T = 1), hence no ACT",
    "RDViTTrainer_RandomLoops": "loop count sampled per training step (log-normal Poisson, mean ≈ T, at most 2T)",
}
