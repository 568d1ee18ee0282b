"""PyTorch's dynamic int8 quantization (torch.ao.quantization.quantize_dynamic, fbgemm/x86: int8 weights per
tensor, uint8 inputs per batch at run time) of the encoder's Linear layers of the DeiT-Tiny-sized ViT in
vit_torch.py (the layers cgrad's --int8 quantizes; the patch convolution, attention's products and the head
stay float32), beside the same model in float32:
  int8_torch.py logits < IN.safetensors > OUT.json   logits of its pixel_values [N, 3, 224, 224], both ways
  int8_torch.py time B T STEPS < IN.safetensors      images/s at batch B on T threads, both ways,
                                                    alternating (the faster of two rounds): one JSON line
IN.safetensors holds the model's weights (as ort_export.py writes them) and, for logits, the pixel values:
files pass through stdin and stdout, so that a PyTorch in a chroot (TORCH_MODERN) needs no path of the host.
Run as one file with vit_torch.py in front of it (int8_compare.sh)."""
import json, os, sys, time
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_torch import load_model, parse_safetensors  # noqa: E402


def quantized(m):
    names = {"blocks.%d.%s" % (i, n) for i in range(len(m.blocks)) for n in ("q", "k", "v", "o", "fc1", "fc2")}
    return torch.ao.quantization.quantize_dynamic(m, names, dtype=torch.qint8)


def ips(m, x, steps):
    with torch.no_grad():
        for _ in range(3):
            m(x)
        t = time.perf_counter()
        for _ in range(steps):
            m(x)
        return x.shape[0] * steps / (time.perf_counter() - t)


def main():
    cmd, w = sys.argv[1], parse_safetensors(sys.stdin.buffer.read())
    m, q = load_model(w), quantized(load_model(w))
    if cmd == "logits":
        with torch.no_grad():
            x = w["pixel_values"]
            json.dump({"torch": torch.__version__, "engine": torch.backends.quantized.engine, "fp32": m(x).tolist(),
                       "int8": q(x).tolist()}, sys.stdout)
    elif cmd == "time":
        b, t, steps = (int(v) for v in sys.argv[2:5])
        torch.set_num_threads(t)
        x = torch.randn(b, 3, 224, 224)
        f32 = i8 = 0
        for _ in range(2):
            f32, i8 = max(f32, ips(m, x, steps)), max(i8, ips(q, x, steps))
        print(json.dumps({"torch": torch.__version__, "engine": torch.backends.quantized.engine, "batch": b,
                          "fp32_img_per_s": f32, "int8_img_per_s": i8}))
    else:
        raise SystemExit(__doc__)


main()
