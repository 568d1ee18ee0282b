"""A DeiT-Tiny-sized ViT with random weights (seeded, vit_torch.py), for cgrad against ONNX Runtime: writes DIR/config.json
and DIR/model.safetensors (Hugging Face's ViTForImageClassification names, which deit_lora loads),
DIR/model.onnx (torch.onnx.export, opset 14, a dynamic batch) and DIR/pixel_values.f32 (2 random
images, raw float32). The forward is written as transformers' ViT computes it (GELU exact, LayerNorm
eps 1e-12). Needs Debian's python3-torch.   Usage: ort_export.py DIR"""
import json, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_torch import CLASSES, D, FF, H, L, P, S, hf_names, make_model, save_safetensors  # noqa: E402


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    m = make_model(0)
    save_safetensors(os.path.join(d, "model.safetensors"), hf_names(m))
    cfg = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": D, "num_hidden_layers": L,
           "num_attention_heads": H, "intermediate_size": FF, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": S,
           "patch_size": P, "num_channels": 3, "qkv_bias": True, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
           "id2label": {str(i): "LABEL_%d" % i for i in range(CLASSES)}, "label2id": {"LABEL_%d" % i: i for i in range(CLASSES)}}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    x = torch.randn(2, 3, S, S)
    open(os.path.join(d, "pixel_values.f32"), "wb").write(x.numpy().tobytes())
    torch.onnx.export(m, x, os.path.join(d, "model.onnx"), input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, opset_version=14)
    print("torch %s: %s written" % (torch.__version__, d))


main()
