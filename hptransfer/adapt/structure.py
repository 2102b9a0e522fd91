"""What parametrize finds in a model's module tree: residual blocks, the matrices that
project back into the residual stream, and attention modules with a logit scale.

Residual blocks: the modules the user names by pattern, or else the children of the one
outermost ``nn.ModuleList`` whose children are all of one class (a transformer's layers).
A residual output projection: in each module inside a block, the last hidden matrix whose
fan-out is the model's width (attention out, FFN down, GPT-2's ``c_proj``, OPT's ``fc2``).
An attention module is reachable when it has a float ``scaling`` attribute it multiplies
its logits by (transformers' families, and the convention for a user's own attention).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from torch import nn

from hptransfer.adapt.shapes import canonical
from hptransfer.errors import ConfigError

_ATTENTION_NAME = re.compile(r"attention|attn", re.IGNORECASE)


def find_blocks(model: nn.Module, pattern: str | Sequence[str] | None) -> list[str]:
    """Module names of the residual blocks, in order (``[]``: none)."""
    if pattern is not None:
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        names = [
            name
            for name, _ in model.named_modules()
            if name and any(fnmatch.fnmatchcase(canonical(name, ddp=True), p) for p in patterns)
        ]
        if not names:
            raise ConfigError(f"blocks: {pattern!r} matches no module of the model")
        return names
    lists = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and len({type(child) for child in module}) == 1
        and any(True for _ in module.parameters())
    ]
    outer = [n for n in lists if not any(n.startswith(f"{o}.") for o in lists if o != n)]
    if len(outer) > 1:
        raise ConfigError(
            f"several lists of blocks ({', '.join(outer)}): name the residual blocks, "
            f"e.g. blocks='{outer[0]}.*'"
        )
    if not outer:
        return []
    prefix = f"{outer[0]}." if outer[0] else ""
    return [f"{prefix}{i}" for i in range(len(model.get_submodule(outer[0])))]


def block_of(name: str, blocks: Sequence[str]) -> str | None:
    """The block that holds parameter or module ``name``, if any."""
    return next((b for b in blocks if name.startswith(f"{b}.")), None)


def residual_outputs(
    hidden: dict[str, tuple[str, int]], blocks: Sequence[str], width: int
) -> set[str]:
    """The hidden weights (name → (module name, fan-out size)) that project into the
    residual stream: in each module inside a block, the last one of fan-out ``width``."""
    last: dict[str, str] = {}
    for name, (module_name, fan_out) in hidden.items():
        if fan_out == width and block_of(name, blocks) is not None:
            parent = module_name.rpartition(".")[0]
            last[parent] = name
    return set(last.values())


def head_dim(module: nn.Module) -> int | None:
    """An attention module's head size: its ``head_dim``, else what its scale implies."""
    size = getattr(module, "head_dim", None)
    if isinstance(size, int) and size > 0:
        return size
    scaling = getattr(module, "scaling", None)
    if isinstance(scaling, float) and scaling > 0:
        return round(scaling**-2)
    return None


def scaled_attention(model: nn.Module) -> list[str]:
    """Names of the modules with a float ``scaling`` and a head size: the attention whose
    logit scale parametrize sets."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(getattr(module, "scaling", None), float)
        and not isinstance(module.scaling, bool)
        and head_dim(module) is not None
    ]


def unreached_attention(model: nn.Module, reached: Sequence[str]) -> list[str]:
    """Modules that look like attention (their class names it) and are not reached, nor
    inside or around a reached one."""
    found = []
    for name, module in model.named_modules():
        if not name or not _ATTENTION_NAME.search(type(module).__name__):
            continue
        related = any(
            r == name or r.startswith(f"{name}.") or name.startswith(f"{r}.") for r in reached
        )
        if not related and not any(name.startswith(f"{f}.") for f in found):
            found.append(name)
    return found
