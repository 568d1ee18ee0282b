"""The GRU of examples/gru_rows.c in eager PyTorch (nn.GRU, fused): the training step's time on random
28x28 images read as 28 rows, batch 128 (Adam, lr 2e-3). Usage: gru_torch.py [--threads T] [--steps N] [--json]"""
import os, sys
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_steps import args, time_steps  # noqa: E402


class RowGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(h[0])


a = args()
m = RowGru()
time_steps(a, m, torch.optim.Adam(m.parameters(), lr=2e-3), torch.randn(128, 28, 28), torch.zeros(128, dtype=torch.long))
