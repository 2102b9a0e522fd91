"""Each parameter's role, read from its shapes in two builds of a model at two widths.

A layer's weight layout says which axis is its fan-in and which its fan-out (``nn.Linear``
(out, in), ``nn.Embedding`` (num, dim), GPT-2's ``Conv1D`` (in, out), convolutions (out, in,
…)); comparing the shapes of two builds says which axes grow with width. Fan-in and fan-out
both grow: hidden; fan-in only: readout; fan-out only: embedding-like; 1-D: vector. A tensor
used by several modules (tied embeddings) has every name it is reachable by, and one role.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from hptransfer.errors import ConfigError, did_you_mean
from hptransfer.param import Role

# A wrapper's prefix in parameter names: torch.compile, DDP / DataParallel, FSDP1, checkpointing.
_WRAPPER = re.compile(r"(^|\.)(_orig_mod|_fsdp_wrapped_module|_checkpoint_wrapped_module)\.")
_DDP = re.compile(r"^module\.")

RESIDUAL = "residual"  # an override: a hidden matrix whose output enters the residual stream
ROLE_NAMES = (*(r.value for r in Role), RESIDUAL)


def canonical(name: str, ddp: bool = False) -> str:
    """``name`` without the prefixes wrappers add (``_orig_mod.``; with ``ddp``, ``module.``)."""
    name = _WRAPPER.sub(r"\1", name)
    return _DDP.sub("", name) if ddp else name


@dataclass(frozen=True)
class Use:
    """One module's own parameter: the tensor's name there, and the module's weight layout
    as the axes of (fan-in, fan-out), ``None`` where the layout is unknown."""

    name: str
    module: str
    axes: tuple[int, int] | None


@dataclass(frozen=True)
class Tensor:
    """One parameter tensor: its canonical name (the first ``named_parameters`` gives) and
    every use of it."""

    name: str
    uses: tuple[Use, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(use.name for use in self.uses)


def weight_axes(module: nn.Module, param_name: str) -> tuple[int, int] | None:
    """(fan-in axis, fan-out axis) of ``module``'s own parameter, or ``None`` if unknown."""
    if param_name != "weight":
        return None
    if isinstance(module, nn.Linear):
        return (1, 0)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return (0, 1)
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):  # transformers' GPT-2
        return (0, 1)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return (0, 1)
    if isinstance(module, nn.modules.conv._ConvNd):
        return (1, 0)
    return None


def tensors(model: nn.Module) -> list[Tensor]:
    """Every parameter tensor of ``model`` with all its uses, in ``named_parameters`` order."""
    modules = dict(model.named_modules(remove_duplicate=False))
    uses: dict[int, list[Use]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        module_name, _, local = name.rpartition(".")
        axes = weight_axes(modules[module_name], local)
        uses.setdefault(id(param), []).append(Use(name, module_name, axes))
    return [Tensor(group[0].name, tuple(group)) for group in uses.values()]


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every name a parameter has (tied ones: each), with its shape."""
    return {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}


def counterpart(name: str, blocks: Sequence[str], other_blocks: Sequence[str]) -> str:
    """The name in another build of a parameter or module ``name``: inside block k, the
    other build's block k (mod its depth); elsewhere the same name."""
    for i, block in enumerate(blocks):
        if name.startswith(f"{block}.") and other_blocks:
            return f"{other_blocks[i % len(other_blocks)]}{name[len(block) :]}"
    return name


def aligned(
    model: dict[str, tuple[int, ...]],
    other: dict[str, tuple[int, ...]],
    blocks: Sequence[str],
    other_blocks: Sequence[str],
    what: str,
) -> dict[str, tuple[int, ...]]:
    """``other``'s shapes under ``model``'s names (:func:`counterpart`), so that builds of
    other depths compare too; refuses builds that name other parameters."""
    if len(blocks) == len(other_blocks):
        _check_same_names(model, other, what)
        return other
    names = {n: counterpart(n, blocks, other_blocks) for n in model}
    if set(names.values()) != other.keys():  # raises, naming them
        _check_same_names(dict.fromkeys(names.values(), ()), dict.fromkeys(other, ()), what)
    shapes_ = {n: other[c] for n, c in names.items()}
    _check_same_names(model, shapes_, what)
    return shapes_


def _check_same_names(model: dict[str, tuple], other: dict[str, tuple], what: str) -> None:
    """The builds name the same parameters, with the same number of axes."""
    missing, extra = sorted(model.keys() - other.keys()), sorted(other.keys() - model.keys())
    if missing or extra:
        parts = [f"missing there: {', '.join(missing[:3])}" if missing else ""]
        parts.append(f"only there: {', '.join(extra[:3])}" if extra else "")
        raise ConfigError(
            f"the {what} model has other parameter names than the model "
            f"({'; '.join(p for p in parts if p)}): build both from the same code"
        )
    ranks = [n for n in model if len(model[n]) != len(other[n])]
    if ranks:
        raise ConfigError(f"the {what} model's {ranks[0]} has {len(other[ranks[0]])} axes")


def grown_axes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[bool, ...]:
    return tuple(x != y for x, y in zip(a, b, strict=True))


def tensor_role(tensor: Tensor, base: tuple[int, ...], other: tuple[int, ...]) -> Role | None:
    """The role its shapes in two builds give, ``None`` if they cannot decide it."""
    if len(base) < 2:
        return Role.VECTOR
    grown = grown_axes(base, other)
    roles = {_layout_role(use.axes, grown) for use in tensor.uses}
    if len(roles) == 1:
        return roles.pop()
    if Role.EMBEDDING in roles and roles <= {Role.EMBEDDING, Role.READOUT}:
        return Role.EMBEDDING  # tied: the embedding's tensor, also used as the readout
    return None


def _layout_role(axes: tuple[int, int] | None, grown: tuple[bool, ...]) -> Role | None:
    if axes is None:  # layout unknown: only "every axis grows" says anything
        return Role.HIDDEN if len(grown) == 2 and all(grown) else None
    fan_in, fan_out = grown[axes[0]], grown[axes[1]]
    if fan_in and fan_out:
        return Role.HIDDEN
    if fan_in:
        return Role.READOUT
    if fan_out:
        return Role.EMBEDDING
    return None


def readout_uses(tensor: Tensor, base: tuple[int, ...], other: tuple[int, ...]) -> list[str]:
    """The modules that use ``tensor`` as a readout (fan-in grows, fan-out fixed)."""
    if len(base) < 2:
        return []
    grown = grown_axes(base, other)
    return [u.module for u in tensor.uses if _layout_role(u.axes, grown) is Role.READOUT]


def overrides(tensors_: list[Tensor], roles: Mapping[str, str]) -> dict[str, str]:
    """The role each override pattern gives, by canonical name; a pattern that matches no
    name, or an unknown role, is refused."""
    chosen: dict[str, str] = {}
    for pattern, role in roles.items():
        if role not in ROLE_NAMES:
            raise ConfigError(
                f"roles[{pattern!r}]: unknown role {role!r}{did_you_mean(str(role), ROLE_NAMES)}"
                f"; expected one of {', '.join(ROLE_NAMES)}"
            )
        hits = [
            t.name
            for t in tensors_
            if any(fnmatch.fnmatchcase(canonical(n, ddp=True), pattern) for n in t.names)
            or fnmatch.fnmatchcase(canonical(pattern, ddp=True), t.name)
        ]
        if not hits:
            names = [n for t in tensors_ for n in t.names]
            raise ConfigError(
                f"roles: {pattern!r} matches no parameter{did_you_mean(pattern, names)}"
            )
        chosen.update(dict.fromkeys(hits, role))
    return chosen


@dataclass(frozen=True)
class Width:
    """The model's width at the base and in the model (the commonest size pair of the axes
    that grow), so m_d = model / base."""

    base: int
    model: int


def measure_width(
    base: dict[str, tuple[int, ...]],
    delta: dict[str, tuple[int, ...]],
    model: dict[str, tuple[int, ...]],
) -> Width:
    """The (base, model) size pair seen most often on the axes that grow from base to delta."""
    pairs: Counter[tuple[int, int]] = Counter()
    for name, b in base.items():
        for axis, grew in enumerate(grown_axes(b, delta[name])):
            if grew:
                pairs[(b[axis], model[name][axis])] += 1
    if not pairs:
        raise ConfigError(
            "no parameter's shape differs between the base and the other build: pass delta= "
            "(the model built at another width) to tell which axes are widths"
        )
    (b, m), _ = pairs.most_common(1)[0]
    return Width(base=b, model=m)
