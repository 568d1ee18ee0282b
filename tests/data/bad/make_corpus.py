"""Writes the bad-input corpus (tests/apps/test_bad_inputs.sh runs it from manifest.tsv): images,
checkpoints, configs and datasets that deit_lora must refuse with one clear message and exit 2.
Deterministic; run from this folder with python3 (no third-party modules)."""
import json, os, shutil, struct, zipfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)
for d in os.listdir("."):
    if d not in ("make_corpus.py", "manifest.tsv"):
        shutil.rmtree(d) if os.path.isdir(d) else os.remove(d)


def w(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    open(path, "wb").write(data if isinstance(data, bytes) else data.encode())


def zinfo(name):
    """a zip member with a fixed date, so the corpus is the same bytes on every run"""
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))


def st(tensors, extra_header=None, data_override=None):
    """safetensors bytes from {name: (dtype, shape, bytes)}"""
    hdr, blobs, off = {}, [], 0
    for k, (dt, shape, b) in tensors.items():
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    if extra_header:
        hdr.update(extra_header)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + (data_override if data_override is not None else b"".join(blobs))


def png(w_, h_, ctype, depth, rows, ihdr_override=None):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = ihdr_override or struct.pack(">IIBBBBB", w_, h_, depth, ctype, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b"")


# ---- a small valid model (image 16, patch 8, hidden 8, 1 layer, 2 heads, MLP 8, 2 labels) ----
D, F_, P, IMG, L = 8, 8, 8, 16, 1
cfg = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": D, "num_hidden_layers": L,
       "num_attention_heads": 2, "intermediate_size": F_, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": IMG,
       "patch_size": P, "num_channels": 3, "qkv_bias": True, "id2label": {"0": "cat", "1": "dog"}, "label2id": {"cat": 0, "dog": 1}}
shapes = {"vit.embeddings.cls_token": [1, 1, D], "vit.embeddings.position_embeddings": [1, 5, D],
          "vit.embeddings.patch_embeddings.projection.weight": [D, 3, P, P], "vit.embeddings.patch_embeddings.projection.bias": [D],
          "vit.layernorm.weight": [D], "vit.layernorm.bias": [D], "classifier.weight": [2, D], "classifier.bias": [2]}
for m, (o, n) in {"attention.attention.query": (D, D), "attention.attention.key": (D, D), "attention.attention.value": (D, D),
                  "attention.output.dense": (D, D), "intermediate.dense": (F_, D), "output.dense": (D, F_)}.items():
    shapes[f"vit.encoder.layer.0.{m}.weight"], shapes[f"vit.encoder.layer.0.{m}.bias"] = [o, n], [o]
for ln in ("layernorm_before", "layernorm_after"):
    shapes[f"vit.encoder.layer.0.{ln}.weight"], shapes[f"vit.encoder.layer.0.{ln}.bias"] = [D], [D]


def numel(s):
    n = 1
    for x in s:
        n *= x
    return n


def weights(skip=None, reshape=None, dtype=None):
    t = {}
    for i, (k, s) in enumerate(sorted(shapes.items())):
        if k == skip:
            continue
        s = reshape.get(k, s) if reshape else s
        vals = [((i * 31 + j * 7) % 17 - 8) * 0.01 for j in range(numel(s))]
        if "layernorm" in k and k.endswith("weight"):
            vals = [1.0] * numel(s)
        t[k] = (dtype or "F32", s, struct.pack(f"<{len(vals)}f", *vals))
    return t


def model(d, config=None, wbytes=None, pre=None):
    os.makedirs(d, exist_ok=True)
    w(f"{d}/config.json", config if isinstance(config, (str, bytes)) else json.dumps(config or cfg))
    if wbytes is not None:
        w(f"{d}/model.safetensors", wbytes)
    if pre is not None:
        w(f"{d}/preprocessor_config.json", pre)


model("model_ok", wbytes=st(weights()))
good_png = png(IMG, IMG, 2, 8, [bytes((x * 13 + y * 7) % 256 for x in range(IMG * 3)) for y in range(IMG)])
w("images/ok.png", good_png)

# ---- images ----
w("images/empty.jpg", b"")
w("images/text.jpg", "this is not a JPEG, only text with a .jpg name\n")
w("images/gif.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
w("images/bmp.png", b"BM" + b"\0" * 60)
w("images/truncated.png", good_png[:60])
bad_crc = bytearray(good_png)
bad_crc[40] ^= 0xff
w("images/bad_crc.png", bytes(bad_crc))
w("images/bomb.png", png(1, 1, 2, 8, [b"\0\0\0"], ihdr_override=struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)))
w("images/bad_depth.png", png(4, 4, 2, 3, [b"\0" * 12] * 4))
w("images/zero_size.png", png(0, 0, 2, 8, [], ihdr_override=struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)))
w("images/jpeg_magic_junk.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 4)
w("images/png_magic_junk.png", b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
# a JPEG header claiming 60000 x 60000 (SOF0) with no scan data
sof = b"\xff\xc0\x00\x11\x08\xea\x60\xea\x60\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
sos = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
w("images/bomb.jpg", b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof + sos + b"\x00" * 64 + b"\xff\xd9")

# ---- checkpoints ----
full = st(weights())
hl = struct.unpack("<Q", full[:8])[0]
model("ckpt_header_past_end", wbytes=struct.pack("<Q", 10 ** 6) + full[8:200])
model("ckpt_header_too_large", wbytes=struct.pack("<Q", 2 ** 40) + full[8:])
model("ckpt_malformed_json", wbytes=struct.pack("<Q", 12) + b'{"a": [1, 2' + b" " + full[8 + hl:])
model("ckpt_unknown_dtype", wbytes=st(weights(dtype="Q9")))
model("ckpt_truncated", wbytes=full[: len(full) // 2])
t = weights()
k0, k1 = sorted(t)[:2]
over = st(t, extra_header={k1: {"dtype": "F32", "shape": t[k1][1], "data_offsets": [0, len(t[k1][2])]}})
model("ckpt_overlapping", wbytes=over)
bad_span = weights()
name = "classifier.bias"
model("ckpt_missized_span", wbytes=st({**bad_span, name: ("F32", [3], bad_span[name][2])}))
model("ckpt_missing_tensor", wbytes=st(weights(skip="vit.encoder.layer.0.attention.attention.key.weight")))
model("ckpt_wrong_shape", wbytes=st(weights(reshape={"vit.encoder.layer.0.intermediate.dense.weight": [4, 16]})))
model("ckpt_int_weights", wbytes=st({k: ("I32", s, b) for k, (_, s, b) in weights().items()}))
model("ckpt_no_weights")
# pytorch_model.bin variants
model("bin_foreign_global")
with zipfile.ZipFile("bin_foreign_global/pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
    z.writestr(zinfo("archive/data.pkl"), b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R.")
model("bin_broken_zip", wbytes=None)
w("bin_broken_zip/pytorch_model.bin", b"PK\x03\x04" + b"\x00" * 40)
model("bin_no_pickle")
with zipfile.ZipFile("bin_no_pickle/pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
    z.writestr(zinfo("archive/version"), b"3")
model("bin_bad_opcode")
with zipfile.ZipFile("bin_bad_opcode/pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
    z.writestr(zinfo("archive/data.pkl"), b"\x80\x02(i__builtin__\nobject\n.")
# sharded
model("shard_missing")
w("shard_missing/model.safetensors.index.json", json.dumps({"weight_map": {k: "model-00001-of-00002.safetensors" for k in shapes}}))
model("shard_traversal")
w("shard_traversal/model.safetensors.index.json", json.dumps({"weight_map": {"classifier.bias": "../model_ok/model.safetensors"}}))
model("shard_bad_index")
w("shard_bad_index/model.safetensors.index.json", '{"metadata": {}}')

# ---- config.json ----
model("cfg_malformed", config='{"hidden_size": 8,', wbytes=full)
model("cfg_trailing", config=json.dumps(cfg) + "\n} trailing", wbytes=full)
model("cfg_wrong_type", config={**cfg, "hidden_size": "eight"}, wbytes=full)
model("cfg_heads_not_dividing", config={**cfg, "num_attention_heads": 3}, wbytes=full)
model("cfg_negative", config={**cfg, "intermediate_size": -8}, wbytes=full)
model("cfg_labels_disagree", config={**cfg, "num_labels": 5}, wbytes=full)
model("cfg_act", config={**cfg, "hidden_act": "relu"}, wbytes=full)
model("cfg_patch", config={**cfg, "patch_size": 5}, wbytes=full)
model("cfg_id2label_key", config={**cfg, "id2label": {"0": "cat", "seven": "dog"}}, wbytes=full)
model("cfg_eps", config={**cfg, "layer_norm_eps": 0}, wbytes=full)
model("cfg_missing", wbytes=full)
os.remove("cfg_missing/config.json")
# ---- preprocessor_config.json ----
model("pre_malformed", wbytes=full, pre="{")
model("pre_std_zero", wbytes=full, pre=json.dumps({"image_std": [0.5, 0, 0.5], "size": 16}))
model("pre_size", wbytes=full, pre=json.dumps({"size": "big"}))
model("pre_resample", wbytes=full, pre=json.dumps({"size": 16, "resample": 42}))
model("pre_wrong_output", wbytes=full, pre=json.dumps({"size": 32}))
# ==== round 2: sizes from headers, config bounds, repeated keys, non-finite weights ====


def pk_str(x):
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pk_int(n):
    if 0 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def pk_global(mod, name):
    return b"c" + f"{mod}\n{name}\n".encode()


def pk_tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    """torch._utils._rebuild_tensor_v2(storage KEY of NUMEL elements, offset, size, stride, False, OrderedDict())"""
    pid = b"(" + pk_str("storage") + pk_global("torch", storage) + pk_str(key) + pk_str("cpu") + pk_int(numel) + b"tQ"
    tup = lambda xs: b"(" + b"".join(pk_int(x) for x in xs) + b"t"
    args = b"(" + pid + pk_int(offset) + tup(size) + tup(stride) + b"\x89" + pk_global("collections", "OrderedDict") + b")Rt"
    return pk_global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def torch_bin(d, entries, storages):
    """a pytorch_model.bin: state dict [(name, tensor pickle)], storages {key: bytes}"""
    body = b"".join(pk_str(n) + t for n, t in entries)
    pkl = b"\x80\x02" + pk_global("collections", "OrderedDict") + b")R(" + body + b"u."
    with zipfile.ZipFile(f"{d}/pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
        z.writestr(zinfo("archive/data.pkl"), pkl)
        for k, b in storages.items():
            z.writestr(zinfo(f"archive/data/{k}"), b)


def patch_central(path, member, csize=None, usize=None):
    """rewrites the sizes of MEMBER in the zip's central directory"""
    b = bytearray(open(path, "rb").read())
    i = b.find(b"PK\x01\x02" + b"\x00" * 0, 0)
    while i >= 0:
        nl = struct.unpack("<H", b[i + 28:i + 30])[0]
        if b[i + 46:i + 46 + nl] == member.encode():
            if csize is not None:
                b[i + 20:i + 24] = struct.pack("<I", csize)
            if usize is not None:
                b[i + 24:i + 28] = struct.pack("<I", usize)
        i = b.find(b"PK\x01\x02", i + 4)
    open(path, "wb").write(bytes(b))


four = struct.pack("<4f", 1, 2, 3, 4)
model("bin_storage_wrap")  # numel * 4 wraps around 2^64 to 4 bytes
torch_bin("bin_storage_wrap", [("classifier.bias", pk_tensor("0", 2 ** 62 + 1, 0, [2], [1]))], {"0": four})
model("bin_stride_overflow")  # (size - 1) * stride past int64
torch_bin("bin_stride_overflow", [("classifier.bias", pk_tensor("0", 4, 0, [2 ** 40, 2 ** 40], [2 ** 40, 1]))], {"0": four})
model("bin_zero_stride_huge")  # 2^40 elements viewed on a storage of 4 (stride 0)
torch_bin("bin_zero_stride_huge", [("classifier.bias", pk_tensor("0", 4, 0, [2 ** 20, 2 ** 20], [0, 0]))], {"0": four})
model("bin_offset_past_end")
torch_bin("bin_offset_past_end", [("classifier.bias", pk_tensor("0", 4, 3, [2], [1]))], {"0": four})
model("bin_entry_past_file")  # the central directory says the stored entry is 2 GB
torch_bin("bin_entry_past_file", [("classifier.bias", pk_tensor("0", 4, 0, [2], [1]))], {"0": four})
patch_central("bin_entry_past_file/pytorch_model.bin", "archive/data/0", csize=0x7fffffff, usize=0x7fffffff)
model("bin_sizes_disagree")  # uncompressed size above the stored size of a stored entry
torch_bin("bin_sizes_disagree", [("classifier.bias", pk_tensor("0", 2 ** 20, 0, [2], [1]))], {"0": four})
patch_central("bin_sizes_disagree/pytorch_model.bin", "archive/data/0", usize=4 << 20)
model("bin_repeated_name")
torch_bin("bin_repeated_name", [("classifier.bias", pk_tensor("0", 4, 0, [2], [1])), ("classifier.bias", pk_tensor("0", 4, 2, [2], [1]))],
          {"0": four})

# timm checkpoints whose shapes would divide by zero or allocate on a header's word
timm_cfg = {"architecture": "vit_tiny_patch8_16", "num_classes": 2, "model_args": {"num_heads": 2},
            "pretrained_cfg": {"input_size": [3, IMG, IMG], "crop_pct": 1.0, "crop_mode": "center", "mean": [0.5] * 3,
                               "std": [0.5] * 3}}


def timm_weights(**over):
    t = {"cls_token": [1, 1, D], "pos_embed": [1, 5, D], "patch_embed.proj.weight": [D, 3, P, P], "patch_embed.proj.bias": [D],
         "norm.weight": [D], "norm.bias": [D], "head.weight": [2, D], "head.bias": [2], "blocks.0.attn.qkv.weight": [3 * D, D],
         "blocks.0.attn.qkv.bias": [3 * D], "blocks.0.attn.proj.weight": [D, D], "blocks.0.attn.proj.bias": [D],
         "blocks.0.mlp.fc1.weight": [F_, D], "blocks.0.mlp.fc1.bias": [F_], "blocks.0.mlp.fc2.weight": [D, F_],
         "blocks.0.mlp.fc2.bias": [D], "blocks.0.norm1.weight": [D], "blocks.0.norm1.bias": [D], "blocks.0.norm2.weight": [D],
         "blocks.0.norm2.bias": [D]}
    t.update(over)
    return st({k: ("F32", s, struct.pack(f"<{numel(s)}f", *([0.01] * numel(s)))) for k, s in t.items()})


model("timm_patch_zero", config=timm_cfg, wbytes=timm_weights(**{"patch_embed.proj.weight": [D, 3, 0, 0]}))
model("timm_head_no_rows", config=timm_cfg, wbytes=timm_weights(**{"head.weight": [0, D], "head.bias": [0]}))
model("timm_head_huge", config=timm_cfg, wbytes=timm_weights(**{"head.weight": [10 ** 8, 0]}))
model("timm_channels", config=timm_cfg, wbytes=timm_weights(**{"patch_embed.proj.weight": [D, 1, P, P]}))
model("timm_image_huge", config={**timm_cfg, "pretrained_cfg": {**timm_cfg["pretrained_cfg"], "input_size": [3, 32768, 32768]}},
      wbytes=timm_weights())

# config values the pipeline cannot honour
model("cfg_channels_1", config={**cfg, "num_channels": 1}, wbytes=full)
model("cfg_channels_4", config={**cfg, "num_channels": 4}, wbytes=full)
model("cfg_image_huge", config={**cfg, "image_size": 32768, "patch_size": 8}, wbytes=full)
model("cfg_too_many_patches", config={**cfg, "image_size": 4096, "patch_size": 1}, wbytes=full)
model("cfg_repeated_key", config=json.dumps(cfg)[:-1] + ', "hidden_size": 16}', wbytes=full)
model("cfg_repeated_label", config=json.dumps(cfg).replace('"id2label": {', '"id2label": {"1": "cow", '), wbytes=full)
model("pre_repeated_key", wbytes=full, pre='{"size": 16, "size": 32}')
# safetensors headers with a name twice (cJSON would keep the first, Python the last)
hdr = json.loads(full[8:8 + hl])
dup_json = json.dumps(hdr)[:-1] + ', "classifier.bias": ' + json.dumps(hdr["classifier.bias"]) + "}"
dup_json += " " * ((8 - len(dup_json) % 8) % 8)
model("ckpt_repeated_name", wbytes=struct.pack("<Q", len(dup_json)) + dup_json.encode() + full[8 + hl:])
model("cfg_label_not_utf8", config=json.dumps(cfg).encode().replace(b'"dog"', b'"d\xf6g"'), wbytes=full)
# non-finite weights
nan_w = weights()
nan_w["classifier.weight"] = ("F32", [2, D], struct.pack(f"<{2 * D}f", *([float("nan")] + [0.0] * (2 * D - 1))))
model("ckpt_nan", wbytes=st(nan_w))
inf_w = weights()
inf_w["vit.layernorm.weight"] = ("F32", [D], struct.pack(f"<{D}f", *([float("inf")] * D)))
model("ckpt_inf", wbytes=st(inf_w))
# finite weights whose activations overflow: the outputs are NaN, which no command reports as a result
big_w = {k: (dt, s, struct.pack(f"<{numel(s)}f", *([3e38] * numel(s)))) for k, (dt, s, b) in weights().items()}
model("ckpt_overflow", wbytes=st(big_w))
sharded_dups = {"weight_map": {k: "model.safetensors" for k in shapes}}
model("shard_repeated_key")
w("shard_repeated_key/model.safetensors.index.json", json.dumps(sharded_dups)[:-2] + ', "classifier.bias": "other.safetensors"}}')

# ---- adapters ----
lora = {}
for m_ in ("query", "value"):
    lora[f"base_model.model.vit.encoder.layer.0.attention.attention.{m_}.lora_A.weight"] = ("F32", [2, D], b"\0" * 4 * 2 * D)
    lora[f"base_model.model.vit.encoder.layer.0.attention.attention.{m_}.lora_B.weight"] = ("F32", [D, 2], b"\0" * 4 * 2 * D)
cls = {"base_model.model.classifier.weight": ("F32", [2, D], b"\0" * 4 * 2 * D), "base_model.model.classifier.bias": ("F32", [2], b"\0" * 8)}
acfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "target_modules": ["query", "value"], "modules_to_save": ["classifier"], "bias": "none"}


def adapter(d, config=None, tensors=None):
    os.makedirs(d, exist_ok=True)
    w(f"{d}/adapter_config.json", config if isinstance(config, str) else json.dumps(config or acfg))
    if tensors is not False:
        w(f"{d}/adapter_model.safetensors", st(tensors or {**lora, **cls}))


adapter("adapter_ok")
adapter("adapter_r_zero", {**acfg, "r": 0})
adapter("adapter_malformed", '{"r": 2, ')
adapter("adapter_alpha", {**acfg, "lora_alpha": -1})
adapter("adapter_regex", {**acfg, "target_modules": ".*query"})
adapter("adapter_regex_python", {**acfg, "target_modules": "(?i).*QUERY"})
adapter("adapter_regex_classifier", {**acfg, "target_modules": ".*(query|value|classifier)"})
adapter("adapter_unknown_target", {**acfg, "target_modules": ["qkv"]})
adapter("adapter_save_other", {**acfg, "modules_to_save": ["pooler"]})
adapter("adapter_not_lora", {**acfg, "peft_type": "IA3"})
adapter("adapter_dora", {**acfg, "use_dora": True})
adapter("adapter_rank_mismatch", {**acfg, "r": 4})
adapter("adapter_missing_tensor", None, {k: v for k, v in lora.items() if "value.lora_B" not in k} | cls)
adapter("adapter_head_mismatch", None, {**lora, "base_model.model.classifier.weight": ("F32", [2, 5], b"\0" * 40),
                                        "base_model.model.classifier.bias": ("F32", [2], b"\0" * 8)})
adapter("adapter_no_weights", None, False)
adapter("adapter_nan", None, {**lora, "base_model.model.vit.encoder.layer.0.attention.attention.query.lora_B.weight":
                               ("F32", [D, 2], struct.pack(f"<{2 * D}f", *([float("nan")] * 2 * D)))} | cls)
adapter("adapter_alpha_pattern", {**acfg, "alpha_pattern": {"query": 16}})
adapter("adapter_rank_pattern", {**acfg, "rank_pattern": {"value": 8}})
adapter("adapter_layers_to_transform", {**acfg, "layers_to_transform": [0]})
adapter("adapter_regex_blowup", {**acfg, "target_modules": "((a{1,100}){1,100}){1,100}"})
adapter("adapter_repeated_key", json.dumps(acfg)[:-1] + ', "r": 8}')
# ---- datasets ----
os.makedirs("data_empty", exist_ok=True)
w("data_empty/.keep", "")
os.makedirs("data_few", exist_ok=True)
for i in range(3):
    w(f"data_few/img{i}.png", good_png)
os.makedirs("data_classes/cat", exist_ok=True)
os.makedirs("data_classes/dog", exist_ok=True)
w("data_classes/cat/a.png", good_png)
w("data_classes/dog/notes.txt", "no images here\n")
os.makedirs("data_only_text", exist_ok=True)
w("data_only_text/a.txt", "text\n")
w("data_is_a_file", "not a folder\n")
# a corrupt image among good ones: found before the first step, nothing written
os.makedirs("data_corrupt_late", exist_ok=True)
for i in range(12):
    w(f"data_corrupt_late/img{i:02d}.png", good_png)
w("data_corrupt_late/img12.png", good_png[:70])
os.makedirs("out_not_empty", exist_ok=True)
w("out_not_empty/something.txt", "keep me\n")
print("corpus written")
