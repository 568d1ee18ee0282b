"""The CNN of examples/cnn_fashion.c in eager PyTorch: the training step's time on random 28x28
images, batch 64 (Adam, lr 1e-3). Usage: cnn_torch.py [--threads T] [--steps N] [--json]"""
import os, sys
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_steps import args, time_steps  # noqa: E402

a = args(50)
m = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
time_steps(a, m, torch.optim.Adam(m.parameters(), lr=1e-3), torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)))
