"""The LSTM (Hochreiter & Schmidhuber 1997; the gates as torch.nn.LSTM computes them): the recurrent
baseline that state-space models were introduced to replace."""
