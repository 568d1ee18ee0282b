"""The CNN example's saved parameter set (SAVE=PATH) read by PyTorch: load_state_dict(strict=True)
into the same nn.Module, then the test accuracy over Fashion-MNIST's 10,000 test images, printed
as "torch accuracy A" (the caller compares it with the C program's).
Usage: cnn_state_dict.py PARAMS.safetensors DATA_DIR (needs python3-torch)."""
import gzip, sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import st_io


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64 * 7 * 7, 128), nn.Linear(128, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc2(F.relu(self.fc1(h.flatten(1))))


m = Cnn()
m.load_state_dict(st_io.load(sys.argv[1]), strict=True)
d = sys.argv[2]
img = gzip.open(f"{d}/t10k-images-idx3-ubyte.gz").read()[16:]
lab = torch.tensor(list(gzip.open(f"{d}/t10k-labels-idx1-ubyte.gz").read()[8:]))
x = torch.frombuffer(bytearray(img), dtype=torch.uint8).float().reshape(-1, 1, 28, 28)
x = (x / 255.0 - 0.2860) / 0.3530
with torch.no_grad():
    pred = torch.cat([m(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
print(f"torch accuracy {(pred == lab).double().mean().item():.4f}")
