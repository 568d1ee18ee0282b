"""Cross-check `deit_lora preprocess` against Pillow + NumPy on real photos the developers did not
pick: ViTImageProcessor's path (BILINEAR to 224) and DeiTImageProcessor's (BICUBIC to 256x256,
crop 224, ImageNet statistics), computed the way transformers does (float64 rescale cast to
float32, then (x - mean) / std in float32). Usage: pillow_crosscheck.py DEIT_LORA MODEL_DIR PHOTO..."""
import json, os, shutil, struct, subprocess, sys, tempfile
import numpy as np
from PIL import Image


def load_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    e = h["pixel_values"]
    a, b = e["data_offsets"]
    return np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"])


def reference(path, size, resample, crop, mean, std):
    im = Image.open(path).convert("RGB").resize((size, size), resample)
    a = np.array(im)
    if crop:
        t = (size - crop) // 2
        a = a[t:t + crop, t:t + crop]
    x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return x.transpose(2, 0, 1)


def main():
    exe, model, photos = sys.argv[1], sys.argv[2], sys.argv[3:]
    tmp = tempfile.mkdtemp()
    try:
        deit = os.path.join(tmp, "deit")
        os.makedirs(deit)
        shutil.copy(os.path.join(model, "config.json"), deit)
        json.dump({"image_processor_type": "DeiTImageProcessor", "do_resize": True, "size": {"height": 256, "width": 256},
                   "resample": 3, "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
                   "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                   "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
                  open(os.path.join(deit, "preprocessor_config.json"), "w"))
        styles = [(model, 224, Image.BILINEAR, 0, [0.5] * 3, [0.5] * 3), (deit, 256, Image.BICUBIC, 224,
                  [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        worst = 0.0
        for mdir, size, rs, crop, mean, std in styles:
            out = os.path.join(tmp, "pv.safetensors")
            subprocess.run([exe, "preprocess", "--model", mdir, "--out", out, "--overwrite"] + photos, check=True, stdout=subprocess.DEVNULL)
            got = load_st(out)
            for i, p in enumerate(photos):
                d = float(np.abs(got[i] - reference(p, size, rs, crop, mean, std)).max())
                worst = max(worst, d)
                if d > 1e-6:
                    print(f"FAIL {p} ({os.path.basename(mdir)}): max diff {d:.3g}")
                    sys.exit(1)
        print(f"{len(photos)} photos x 2 processors equal Pillow (max diff {worst:.3g})")
    finally:
        shutil.rmtree(tmp)


main()
