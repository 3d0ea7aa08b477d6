"""seqbench's machinery: the mixer interface, the registry, checks, timing, the runner and the CLI.

Nothing here imports a model family or a kernel library; families register themselves
(see `harness.registry`).
"""

__version__ = "0.1.0"
