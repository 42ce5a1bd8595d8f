"""nnunet-rdvit's trainers, declared once: ``@register_trainer`` on a class is what nnU-Net's ``-tr`` lookup (the
``trainers/`` shim), the exports of :mod:`nnunet_rdvit.training`, the data-fraction variants and the ablation
grid read.

The names of the data-fraction bases (:data:`~nnunet_rdvit.fraction_trainer_names.FRACTION_BASES`) and of the
ablations with what each changes (:data:`~nnunet_rdvit.ablation_names.ABLATIONS`) are also written in torch-free
modules, because the command line builds its help and ``experiment aggregate`` its grid and ablation table without
importing torch. So a new data-fraction base or ablation is its decorator plus its name there; registering checks
the class against those lists and :func:`fraction_base_classes` / :func:`ablation_classes` check the lists against
the registry, so the two cannot drift apart. Subclasses are not registered by inheritance: a user's trainer in an
``nnUNet_extTrainer`` folder needs nothing of this.

:mod:`nnunet_rdvit.training` imports every module that defines trainers, so importing anything from the package
registers them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from nnunet_rdvit import ablation_names, fraction_trainer_names

Trainer = TypeVar("Trainer", bound=type)


@dataclass(frozen=True)
class Registration:
    trainer: type
    fraction_variants: bool  # <Name>_frac<P>... trainers exist (every ablation has them)
    ablation: bool  # one of the RD-ViT ablations of the ablation grid
    lookup: bool  # exported for -tr; False for nnU-Net's own classes, which its lookup finds itself


_REGISTRY: dict[str, Registration] = {}


def register_trainer(*, fraction_variants: bool = False, ablation: bool = False,
                     lookup: bool = True) -> Callable[[Trainer], Trainer]:
    """Class decorator registering a trainer: ``@register_trainer()``, ``@register_trainer(fraction_variants=True)``
    or ``@register_trainer(ablation=True)``; the class is returned unchanged.

    Raises TypeError if the options disagree with the torch-free declarations or the name is another class's.
    """
    def register(trainer: Trainer) -> Trainer:
        name = trainer.__name__
        registration = Registration(trainer, fraction_variants or ablation, ablation, lookup)
        _check_declared(registration)
        earlier = _REGISTRY.get(name)
        if earlier is not None and earlier.trainer is not trainer:
            raise TypeError(f"two trainers named {name}: {earlier.trainer.__module__}.{name} is registered already, "
                            f"so {trainer.__module__}.{name} needs another name")
        _REGISTRY[name] = registration
        return trainer

    return register


def lookup_trainers() -> dict[str, type]:
    """The registered trainers nnU-Net's ``-tr`` lookup should find, by name, in registration order."""
    return {name: r.trainer for name, r in _REGISTRY.items() if r.lookup}


def fraction_base_classes() -> dict[str, type]:
    """The data-fraction bases, in the order of ``FRACTION_BASES``, and their classes."""
    return {name: _registered(name, "nnunet_rdvit.fraction_trainer_names.FRACTION_BASES")
            for name in fraction_trainer_names.FRACTION_BASES}


def ablation_classes() -> dict[str, type]:
    """The ablation trainers, in the order of ``ABLATIONS`` (the ablation table's), and their classes."""
    return {name: _registered(name, "nnunet_rdvit.ablation_names.ABLATIONS") for name in ablation_names.ABLATIONS}


def _registered(name: str, declaration: str) -> type:
    registration = _REGISTRY.get(name)
    if registration is None:
        raise TypeError(f"{name} is declared in {declaration}, but no trainer class of that name is registered; "
                        f"decorate it with @register_trainer or remove the name there")
    return registration.trainer


def _check_declared(registration: Registration) -> None:
    name = registration.trainer.__name__
    declared = (name in fraction_trainer_names.FRACTION_BASES, name in ablation_names.ABLATIONS)
    if declared != (registration.fraction_variants, registration.ablation):
        raise TypeError(
            f"{name} is registered with fraction_variants={registration.fraction_variants}, "
            f"ablation={registration.ablation}, but {'is' if declared[0] else 'is not'} in "
            f"nnunet_rdvit.fraction_trainer_names.FRACTION_BASES and {'is' if declared[1] else 'is not'} in "
            f"nnunet_rdvit.ablation_names.ABLATIONS (the torch-free lists the command line reads): make them agree")
