"""Whether ``torch.compile`` (inductor) works on this machine: tried once, on a tiny function.

Training (:mod:`curricmusic.training.compiled`) and sampling (:mod:`curricmusic.generation.compiled`)
compile only where this says they can; elsewhere they run eagerly and say why in one line.
"""

from __future__ import annotations

import functools
import os

import torch

from curricmusic.common.paths import redirect_tool_caches

__all__ = ["compile_problem"]


def compile_problem() -> str | None:
    """Why ``torch.compile`` cannot run here (None when it can): tried on a two-operation
    function, once per process, C++ compiler setting and cache folder."""
    import torch._dynamo
    import torch._inductor.config  # the C++ compiler inductor will call (from $CXX at import)

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python version"
    redirect_tool_caches()  # compiled kernels go to curricmusic's cache, shared by every run
    return _probe(repr(torch._inductor.config.cpp.cxx), os.environ.get("TORCHINDUCTOR_CACHE_DIR", ""))


@functools.cache
def _probe(cxx: str, cache: str) -> str | None:
    import torch._dynamo

    def affine(x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 + 1.0

    x = torch.arange(8, dtype=torch.float32)
    try:
        out = torch.compile(affine, dynamic=False, fullgraph=True)(x)
    except Exception as exc:  # noqa: BLE001 - any failure of the tool chain means: run eagerly
        torch._dynamo.reset()
        first = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {first[0][:200] if first else ''}".rstrip(": ")
    if not torch.equal(out, affine(x)):
        return "the compiled test function computed a wrong result"
    return None
