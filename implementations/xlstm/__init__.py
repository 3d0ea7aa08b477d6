"""xLSTM: the mLSTM cell in three forms (parallel, chunkwise, recurrent), the sLSTM cell, the paper's mLSTM
and sLSTM blocks and xLSTM 7B's mLSTM layer in PyTorch, and adapters over mlstm_kernels and xlstm."""

from implementations.xlstm.mlstm import (
    MLSTMState,
    mlstm_chunkwise,
    mlstm_parallel,
    mlstm_recurrent,
    mlstm_recurrent_step,
)
from implementations.xlstm.reference import MLSTMBlock, MLSTMLargeLayer, SLSTMBlock
from implementations.xlstm.slstm import SLSTMState, slstm_recurrent, slstm_step

__all__ = [
    "MLSTMBlock",
    "MLSTMLargeLayer",
    "MLSTMState",
    "SLSTMBlock",
    "SLSTMState",
    "mlstm_chunkwise",
    "mlstm_parallel",
    "mlstm_recurrent",
    "mlstm_recurrent_step",
    "slstm_recurrent",
    "slstm_step",
]
