"""RWKV: the RWKV-7 generalized delta rule (recurrent and chunked, pure PyTorch), the RWKV-7
time-mixing block, and adapters over flash-linear-attention's kernels and layer."""

from implementations.rwkv.reference import RWKV7State, RWKV7TimeMix
from implementations.rwkv.wkv7 import check_rwkv7_inputs, rwkv7, rwkv7_chunked, rwkv7_recurrent

__all__ = ["RWKV7State", "RWKV7TimeMix", "check_rwkv7_inputs", "rwkv7", "rwkv7_chunked", "rwkv7_recurrent"]
