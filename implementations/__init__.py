"""One package per mixer family: a pure-PyTorch reference plus adapters over real kernel libraries.

Each family's `specs.py` lists its implementations for the registry without importing any of them.
"""
