"""Where a warm worker's start-up goes (H100 device runs): import times, then the first and repeated calls
of each named implementation at the throughput quick preset's shapes. Run with the bench's caches:
    XDG_CACHE_HOME=... python scripts/gpu/diag_firstcall.py [--full-fla-import] IMPL...
`--full-fla-import` first runs `import fla` (its package __init__, every layer and model) for comparison."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def seconds_of(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    sync()
    began = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - began


def main(argv: list[str]) -> None:
    print(f"import torch: {seconds_of(lambda: __import__('torch')):.2f} s", flush=True)
    import torch

    print(f"cuda init: {seconds_of(lambda: torch.zeros(1, device='cuda')):.2f} s", flush=True)
    print(f"import triton: {seconds_of(lambda: __import__('triton')):.2f} s", flush=True)
    if argv and argv[0] == "--full-fla-import":
        argv = argv[1:]
        print(f"import fla (package __init__): {seconds_of(lambda: __import__('fla')):.2f} s", flush=True)
    from harness import registry
    from suites import family_config, load_preset

    preset = load_preset("throughput", "quick")
    sync = torch.cuda.synchronize
    for name in argv:
        impl = registry.get(name)
        holder: dict[str, torch.nn.Module] = {}

        def create(impl=impl, holder=holder) -> None:
            holder["mixer"] = impl.create(family_config(preset, impl.family)).to("cuda", torch.bfloat16)

        print(f"{name}: create (with its imports) {seconds_of(create):.2f} s", flush=True)
        mixer = holder["mixer"]
        for mode in ("fwd", "fwd_bwd"):
            for batch, seq_len in [(32, 1024), (32, 1024), (8, 4096), (2, 16384)]:
                x = torch.randn(batch, seq_len, 1024, device="cuda", dtype=torch.bfloat16, requires_grad=True)

                def call(x=x, mixer=mixer, mode=mode) -> None:
                    y = mixer(x)
                    if mode == "fwd_bwd":
                        y.float().sum().backward()

                print(f"  {mode} B={batch} L={seq_len}: {seconds_of(call, sync):.3f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
