#!/usr/bin/env bash
# Command-line behaviour of deit_lora: exit codes (0 ok, 2 bad input), one clear message naming
# the file or flag, and no output file left behind on failure. Prints "N passed, N failed".
set -u
bin=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
# expect CODE "message substring" -- command...
expect() {
    local code=$1 want=$2; shift 3
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$code" ] && [[ "$out" == *"$want"* ]]; then pass=$((pass + 1))
    else fail=$((fail + 1)); echo "FAIL: $* -> exit $rc, output: $out (wanted $code, '$want')"; fi
}
no_file() { if [ -e "$1" ]; then fail=$((fail + 1)); echo "FAIL: $1 was left behind"; else pass=$((pass + 1)); fi; }

img=$data/golden/images
mkdir -p "$tmp/model" && sed 's/"image_size": 32/"image_size": 64/' "$data/golden/tiny/config.json" > "$tmp/model/config.json"
printf 'not an image' > "$tmp/fake.jpg"
: > "$tmp/empty.png"

expect 0 "usage: deit_lora COMMAND" -- "$bin" --help
# --version, for the program and every command: the version, the commit, the kernels, the build's parts
expect 0 "deit_lora (cgrad) " -- "$bin" --version
expect 0 "GEMM kernel: " -- "$bin" train --version
expect 0 "HTTP: " -- "$bin" serve --version
expect 2 "--version: cannot open" -- "$bin" predict --model "$data/golden/tiny" -- --version
expect 2 "unknown command 'frobnicate'" -- "$bin" frobnicate
expect 2 "usage: deit_lora COMMAND" -- "$bin"
expect 0 "usage: deit_lora preprocess" -- "$bin" preprocess --help
expect 0 "wrote pixel_values [2, 3, 64, 64]" -- "$bin" preprocess --model "$tmp/model" --out "$tmp/ok.safetensors" --png "$tmp/png" "$img/small_20x30.jpg" "$img/rgba_200x150.png"
[ -s "$tmp/ok.safetensors" ] && [ -s "$tmp/png/001_rgba_200x150.png.png" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: preprocess outputs missing"; }
expect 2 "$tmp/fake.jpg: not a JPEG or PNG image" -- "$bin" preprocess --model "$tmp/model" --out "$tmp/bad.safetensors" "$img/small_20x30.jpg" "$tmp/fake.jpg"
no_file "$tmp/bad.safetensors"
expect 2 "$tmp/empty.png: empty file" -- "$bin" preprocess --model "$tmp/model" --out "$tmp/bad.safetensors" "$tmp/empty.png"
no_file "$tmp/bad.safetensors"
expect 2 "cannot open" -- "$bin" preprocess --model "$tmp/model" --out "$tmp/bad.safetensors" "$tmp/missing.jpg"
expect 2 "needs --model, --out and at least one IMAGE" -- "$bin" preprocess --model "$tmp/model" "$img/small_20x30.jpg"
expect 2 "unknown option '--modle'" -- "$bin" preprocess --modle "$tmp/model" --out x "$img/small_20x30.jpg"
expect 2 "--out needs a value" -- "$bin" preprocess --model "$tmp/model" --out
expect 2 "$tmp/nomodel/config.json: cannot open" -- "$bin" preprocess --model "$tmp/nomodel" --out "$tmp/bad.safetensors" "$img/small_20x30.jpg"
expect 2 "needs MODEL_DIR and IO.safetensors" -- "$bin" check "$data/golden/tiny"
expect 2 "--labels: 'x,y' must be 3" -- "$bin" check "$data/golden/tiny" "$data/golden/tiny/io.safetensors" --labels x,y

# explain: the map as JSON lines, pictures in --out, each refusal named
g=$data/golden
expect 0 '"method": "relevance"' -- "$bin" explain --model "$g/tiny" --method relevance "$img/small_20x30.jpg"
expect 0 '"grid": [4, 4]' -- "$bin" explain --model "$g/tiny" --adapter "$g/tiny_lora" --out "$tmp/ex" "$img/small_20x30.jpg" "$img/rgba_200x150.png"
[ -s "$tmp/ex/000_small_20x30.jpg.png" ] && [ -s "$tmp/ex/001_rgba_200x150.png.json" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: explain outputs missing"; }
expect 0 '"label": "LABEL_3", "id": 3' -- "$bin" explain --model "$g/tiny" --method relevance --class LABEL_3 "$img/small_20x30.jpg"
expect 0 '"method": "rollout"' -- "$bin" explain --model "$g/tiny" --out "$tmp/ex_slash/" "$img/small_20x30.jpg"
[ -s "$tmp/ex_slash/000_small_20x30.jpg.png" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --out DIR/ (a trailing slash) was not written"; }
expect 2 "the folder $tmp/nowhere does not exist" -- "$bin" explain --model "$g/tiny" --out "$tmp/nowhere/deeper/" "$img/small_20x30.jpg"
expect 2 "--method: 'gradcam' is not rollout or relevance" -- "$bin" explain --model "$g/tiny" --method gradcam "$img/small_20x30.jpg"
expect 2 "--class: 'zebra' is not one of the model's labels" -- "$bin" explain --model "$g/tiny" --method relevance --class zebra "$img/small_20x30.jpg"
expect 2 "--class: attention rollout does not depend on the class" -- "$bin" explain --model "$g/tiny" --class LABEL_3 "$img/small_20x30.jpg"
expect 2 "needs --model and at least one IMAGE" -- "$bin" explain --model "$g/tiny"
# --int8: the commands that only run the model forward; refused where gradients are needed
expect 0 "int8 kernel: " -- "$bin" --version
expect 0 "int8 attention: " -- "$bin" --version
expect 0 '"method": "rollout"' -- "$bin" explain --model "$g/tiny" --adapter "$g/tiny_lora" --int8 "$img/small_20x30.jpg"
expect 2 "--int8: applies to --method rollout only" -- "$bin" explain --model "$g/tiny" --int8 --method relevance "$img/small_20x30.jpg"
expect 0 '"top": [{"label": "LABEL_' -- "$bin" predict --model "$g/tiny" --adapter "$g/tiny_lora" --int8 --json "$img/small_20x30.jpg"
expect 0 '"accuracy"' -- "$bin" eval --model "$g/tiny" --int8 --data "$img" --label LABEL_1 --json
expect 0 '"int8_img_per_s"' -- "$bin" bench --model "$g/tiny" --int8 --infer-only --batch 2 --steps 1 --warmup 0 --json
expect 0 "int8 inference" -- "$bin" bench --model "$g/tiny" --int8 --batch 2 --steps 1 --warmup 0
expect 0 "int8           the encoder's 6 products" -- "$bin" info "$g/tiny"
expect 2 "unknown option '--int8'" -- "$bin" train --model "$g/tiny" --int8 --data "$img" --label x --output "$tmp/int8_train"
no_file "$tmp/int8_train"
expect 2 "$tmp/fake.jpg: not a JPEG or PNG image" -- "$bin" explain --model "$g/tiny" --out "$tmp/ex2" "$img/small_20x30.jpg" "$tmp/fake.jpg"
no_file "$tmp/ex2"
expect 2 "is not empty" -- "$bin" explain --model "$g/tiny" --out "$tmp/ex" "$img/small_20x30.jpg"
expect 2 "--out" -- "$bin" explain --model "$g/tiny" --out "$g/tiny" "$img/small_20x30.jpg"

# a timm-format model directory works with every command
timm=$data/timm_tiny
expect 0 "timm layout" -- "$bin" info "$timm"
expect 0 "LABEL_" -- "$bin" predict --model "$timm" --top 2 "$img/small_20x30.jpg"
expect 0 "Accuracy:" -- "$bin" train --model "$timm" --data "$img" --label newthing --output "$tmp/timm_out" --epochs 1 --test-size 2 --quiet
expect 0 "merged" -- "$bin" merge --model "$timm" --adapter "$tmp/timm_out" --output "$tmp/timm_merged"
expect 0 "ViTForImageClassification model (safetensors)" -- "$bin" info "$tmp/timm_merged"
expect 0 "\"accuracy\"" -- "$bin" eval --model "$tmp/timm_merged" --data "$img" --label newthing --json
# both adapter generations are written, and converted
expect 0 "saved the adapter" -- "$bin" train --model "$data/golden/tiny" --data "$img" --label newthing --output "$tmp/v5" --epochs 1 --test-size 2 --quiet --peft-format v5
expect 0 "v5: transformers 5" -- "$bin" info "$tmp/v5"
expect 0 "converted" -- "$bin" convert-adapter "$tmp/v5" "$tmp/v4" --to v4
expect 0 "v4: transformers 4" -- "$bin" info "$tmp/v4"
expect 0 "newthing" -- "$bin" predict --model "$data/golden/tiny" --adapter "$tmp/v4" --top 11 "$img/small_20x30.jpg"
expect 2 "--to: must be v4 or v5" -- "$bin" convert-adapter "$tmp/v5" "$tmp/v6" --to v6
# training observability: --eval-steps logs evaluations beside the losses (trainer_state.json as the
# Trainer logs them, epochs as floats), every log entry as a JSON line, a model card with peft's
# front matter
expect 0 "'eval_loss'" -- "$bin" train --model "$data/golden/tiny" --data "$img" --label newthing --output "$tmp/obs" --epochs 2 --test-size 2 \
    --quiet --batch-size 2 --grad-accum 1 --logging-steps 1 --eval-steps 2 --report-to tensorboard
expect 2 "--report-to: must be tensorboard or none" -- "$bin" train --model "$data/golden/tiny" --data "$img" --label x --output "$tmp/obs2" \
    --report-to wandb
# the TensorBoard events, read by a reader of their own: CRCs, the version record, the same losses
ev=$(ls "$tmp"/obs/runs/events.out.tfevents.* 2>/dev/null | head -1)
if [ -n "$ev" ] && python3 "$(dirname "$0")/tfevents_read.py" "$ev" > "$tmp/ev.txt" && python3 - "$tmp/ev.txt" "$tmp/obs/trainer_state.json" <<'PY'
import json, struct, sys
lines = [l.split() for l in open(sys.argv[1])]
assert lines[0] == ["file_version", "brain.Event:2"], lines[0]
loss = {int(s): float(v) for t, s, v in lines[1:] if t == "train/loss"}
acc = {int(s): float(v) for t, s, v in lines[1:] if t == "eval/accuracy"}
st = json.load(open(sys.argv[2]))
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
want = {e["step"]: f32(e["loss"]) for e in st["log_history"] if "loss" in e}
assert loss == want, (loss, want)
assert acc == {e["step"]: f32(e["eval_accuracy"]) for e in st["log_history"] if "eval_loss" in e}, acc
PY
then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: the TensorBoard events ($ev)"; fi
if python3 - "$tmp/obs" <<'PY'; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: the run's logs and model card"; fi
import json, re, sys
d = sys.argv[1]
raw = open(d + "/trainer_state.json").read()
st = json.loads(raw)
ev = [e for e in st["log_history"] if "eval_loss" in e]
tr = [e for e in st["log_history"] if "loss" in e]
assert ev and all(e["step"] % 2 == 0 for e in ev) and all(k in ev[0] for k in ("eval_accuracy", "eval_f1", "epoch")), ev
assert re.search(r'"epoch":\s*2\.0\b', raw), "a whole epoch written as a float"
lines = [json.loads(l) for l in open(d + "/trainer_log.jsonl")]
assert len(lines) == len(ev) + len(tr), (len(lines), len(ev), len(tr))
assert [l["step"] for l in lines if "eval_loss" in l] == [e["step"] for e in ev]
card = open(d + "/README.md").read()
assert card.startswith("---\nbase_model: \"tiny\"\nlibrary_name: peft\n"), card[:120]
assert "## Training hyper-parameters" in card and "newthing" in card and "## Evaluation on the held-out images" in card
PY
# peft's regex form of target_modules: trained, saved as a string, loaded back, not respelled
tiny=$data/golden/tiny
expect 0 "saved the adapter" -- "$bin" train --model "$tiny" --data "$img" --label newthing --output "$tmp/rx" --epochs 1 --test-size 2 --quiet --target-regex '.*\.layer\.1\..*(query|value)'
expect 0 "regex '.*\.layer\.1\..*(query|value)'" -- "$bin" info "$tmp/rx"
expect 0 '"target_modules":	".*\\.layer\\.1\\..*(query|value)"' -- cat "$tmp/rx/adapter_config.json"
expect 0 "newthing" -- "$bin" predict --model "$tiny" --adapter "$tmp/rx" --top 11 "$img/small_20x30.jpg"
expect 2 "target_modules is a regex" -- "$bin" convert-adapter "$tmp/rx" "$tmp/rx5" --to v5
no_file "$tmp/rx5"
expect 2 "--target and --target-regex exclude each other" -- "$bin" train --model "$tiny" --data "$img" --label x --output "$tmp/rx2" --target query --target-regex '.*query'
expect 2 "matches 'vit.embeddings.patch_embeddings.projection', which is not a linear layer" -- "$bin" train --model "$tiny" --data "$img" --label x --output "$tmp/rx3" --target-regex '.*(projection|query)'
# resuming with fewer LoRA targets than the checkpoint holds is refused, not half-loaded
expect 0 "saved the adapter" -- "$bin" train --model "$tiny" --data "$img" --label newthing --output "$tmp/rs" --epochs 1 --test-size 2 --quiet --save-steps 1
expect 2 "resume with the same settings" -- "$bin" train --model "$tiny" --data "$img" --label newthing --output "$tmp/rs" --epochs 1 --test-size 2 --quiet --save-steps 1 --resume --target query
expect 2 "made with LoRA r 4, alpha 8, dropout 0.2, these settings give r 4, alpha 16" -- "$bin" train --model "$tiny" --data "$img" --label newthing --output "$tmp/rs" --epochs 1 --test-size 2 --quiet --save-steps 1 --resume --lora-alpha 16
expect 0 "saved the adapter" -- "$bin" train --model "$tiny" --data "$img" --label newthing --output "$tmp/rs" --epochs 1 --test-size 2 --quiet --save-steps 1 --resume
# --resume refuses what changes the data, its split and order, or the optimisation
rs=(--model "$tiny" --data "$img" --label newthing --output "$tmp/rs" --epochs 1 --test-size 2 --quiet --save-steps 1 --resume)
expect 2 "made with other settings than --seed 7" -- "$bin" train "${rs[@]}" --seed 7
expect 2 "made with other settings than --test-size 3" -- "$bin" train "${rs[@]}" --test-size 3
expect 2 "made with other settings than --label other" -- "$bin" train "${rs[@]}" --label other
expect 2 "made with other settings than --no-shuffle 1" -- "$bin" train "${rs[@]}" --no-shuffle
expect 2 "made with other settings than --lr 0.001" -- "$bin" train "${rs[@]}" --lr 1e-3
expect 2 "made with other settings than --scheduler cosine" -- "$bin" train "${rs[@]}" --scheduler cosine
mkdir -p "$tmp/img2" && cp "$img"/*.jpg "$img"/*.png "$tmp/img2/" && rm "$(ls "$tmp"/img2/*.jpg | head -1)"
expect 2 "made with other settings than --data $tmp/img2" -- "$bin" train "${rs[@]}" --data "$tmp/img2"
expect 0 "resuming from" -- "$bin" train "${rs[@]}" --threads 1 --save-total-limit 3 --logging-steps 1
# --init-adapter: an explicit --lora-dropout (a training setting) wins; r, alpha and targets must agree
ia=(--model "$tiny" --data "$img" --label newthing --epochs 1 --test-size 2 --quiet --init-adapter "$tmp/v4")
expect 0 "saved the adapter" -- "$bin" train "${ia[@]}" --output "$tmp/ia" --lora-dropout 0.35
expect 0 '"lora_dropout":	0.35' -- cat "$tmp/ia/adapter_config.json"
expect 0 "saved the adapter" -- "$bin" train "${ia[@]}" --output "$tmp/ia2"
expect 0 '"lora_dropout":	0.2' -- cat "$tmp/ia2/adapter_config.json"
expect 2 "must agree with it or be left out" -- "$bin" train "${ia[@]}" --output "$tmp/ia3" --lora-r 8
expect 2 "must agree with it or be left out" -- "$bin" train "${ia[@]}" --output "$tmp/ia3" --target query,key
expect 0 "saved the adapter" -- "$bin" train "${ia[@]}" --output "$tmp/ia3" --lora-r 4 --lora-alpha 8 --target value,query
# a label or class folder that is not UTF-8 would make a config.json Python cannot read
mkdir -p "$tmp/cls/$(printf 'caf\xe9')" && cp "$img/small_20x30.jpg" "$tmp/cls/$(printf 'caf\xe9')/"
expect 2 "a class folder's name is not valid UTF-8" -- "$bin" train --model "$tiny" --data "$tmp/cls" --output "$tmp/u8" --test-size 0
expect 2 "--label: not valid UTF-8" -- "$bin" train --model "$tiny" --data "$img" --label "$(printf 'x\xff')" --output "$tmp/u8" --test-size 0
no_file "$tmp/u8"

# JSON output is UTF-8 always: a file name whose bytes are not UTF-8 is written with U+FFFD for
# each such byte (predict --json, explain), and the line parses as JSON
bad_name="$tmp/$(printf 'caf\xe9_\xed\xa0\x80_\xc0\xaf.png')"
cp "$img/rgba_200x150.png" "$bad_name"
for cmd in "predict --json" "explain"; do
    out=$("$bin" $cmd --model "$g/tiny" "$bad_name" 2>&1)
    if printf '%s' "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.buffer.read().decode("utf-8")); assert d["image"].endswith("caf\ufffd_\ufffd\ufffd\ufffd_\ufffd\ufffd.png"), d["image"]' 2>/dev/null
    then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $cmd with a non-UTF-8 file name: $out"; fi
done

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
