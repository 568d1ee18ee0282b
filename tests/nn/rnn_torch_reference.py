"""PyTorch's nn.GRU, nn.LSTM, nn.GRUCell and nn.LSTMCell (float32) for tests/nn/test_rnn_torch.c: for
each model, its state_dict (DIR/MODEL.safetensors, loaded by name into cgrad's layer of the same
options), and DIR/MODEL_io.safetensors with the input, the initial states, the outputs, a fixed
random R and the gradients of sum(output * R) (+ the final states' sums) for the input, the initial
states and every parameter.   Usage: rnn_torch_reference.py DIR (needs python3-torch)."""
import json, os, struct, sys

import torch
import torch.nn as nn

torch.manual_seed(3)
D = sys.argv[1]


def save(path, tensors):
    hdr, blobs, off = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].detach().contiguous().float().numpy().tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def run(name, module, x, states, call):
    """call(module, x, states) -> (output, [final states]); saves the model and its values"""
    x.requires_grad_(True)
    for s in states:
        s.requires_grad_(True)
    y, finals = call(module, x, states)
    R = torch.rand(y.shape)
    loss = (y * R).sum() + sum(f.sum() * (i + 2) for i, f in enumerate(finals))  # weights 2, 3 for h_n, c_n
    loss.backward()
    save(os.path.join(D, name + ".safetensors"), {name + "." + k: v for k, v in module.state_dict().items()})
    io = {"x": x, "out": y, "R": R, "grad.x": x.grad}
    for i, s in enumerate(states):
        io["s%d" % i], io["grad.s%d" % i] = s, s.grad
    for i, f in enumerate(finals):
        io["final%d" % i] = f
    for k, p in module.named_parameters():
        io["grad." + name + "." + k] = p.grad
    save(os.path.join(D, name + "_io.safetensors"), io)


T, B, I, H = 5, 3, 4, 6
# a GRU of two bidirectional layers, batch first, with initial states
run("gru", nn.GRU(I, H, num_layers=2, bidirectional=True, batch_first=True), torch.randn(B, T, I), [torch.randn(4, B, H)],
    lambda m, x, s: (lambda y, h: (y, [h]))(*m(x, s[0])))
# an LSTM of two layers (one direction), time first, without biases, with both initial states
run("lstm", nn.LSTM(I, H, num_layers=2, bias=False), torch.randn(T, B, I), [torch.randn(2, B, H), torch.randn(2, B, H)],
    lambda m, x, s: (lambda y, hc: (y, [hc[0], hc[1]]))(*m(x, (s[0], s[1]))))
# a bidirectional LSTM without initial states
run("lstm_bi", nn.LSTM(I, H, bidirectional=True), torch.randn(T, B, I), [],
    lambda m, x, s: (lambda y, hc: (y, [hc[0], hc[1]]))(*m(x)))
run("gru_cell", nn.GRUCell(I, H), torch.randn(B, I), [torch.randn(B, H)], lambda m, x, s: (m(x, s[0]), []))
run("lstm_cell", nn.LSTMCell(I, H), torch.randn(B, I), [torch.randn(B, H), torch.randn(B, H)],
    lambda m, x, s: (lambda h, c: (h, [c]))(*m(x, (s[0], s[1]))))
print("5 models written")
