#!/usr/bin/env bash
# Outputs never follow a planted symlink, never delete what the run did not make, and a result that
# cannot be written is an error. For every command that writes (train, merge, convert-adapter,
# explain, preprocess): symlinks planted where temporary files and staging folders used to be named
# (NAME.tmp, .OUT.tmp-PID, .OUT.tmp-PID-XXXXXX) point at a victim folder and a victim file, which
# must come out unchanged; a staging folder of a dead process that carries the marker is removed,
# one without it is not. Then stdout on a full device: exit 3 with a message.
# Prints "N passed, N failed".
set -u
bin=$1 data=$2
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
g=$data/golden img=$g/images

# a pid that is certainly gone: a child that has exited
dead=$(sh -c 'echo $$')
while kill -0 "$dead" 2>/dev/null; do dead=$((dead + 1)); done

victim=$tmp/victim
mkdir -p "$victim" && cp "$g/tiny/config.json" "$victim/config.json" && echo keep > "$victim/precious.txt"
snapshot() { (cd "$victim" && sha256sum config.json precious.txt) ; }
before=$(snapshot)

# plant PARENT NAME: the traps beside output NAME in PARENT
plant() {
    local parent=$1 name=$2
    ln -sfn "$victim" "$parent/.$name.tmp-$dead"
    ln -sfn "$victim" "$parent/.$name.tmp-$dead-AbCdEf"
    ln -sfn "$victim" "$parent/.$name.tmp-$$"
    mkdir -p "$parent/.$name.tmp-$dead-nomark" && echo mine > "$parent/.$name.tmp-$dead-nomark/user.txt"
    mkdir -p "$parent/.$name.tmp-$dead-Marked" && printf 'cgrad %s\n' "$dead" > "$parent/.$name.tmp-$dead-Marked/.cgrad-stage"
    echo leftover > "$parent/.$name.tmp-$dead-Marked/model.safetensors"
    ln -s "$victim/precious.txt" "$parent/.$name.tmp-$dead-Marked/link"
}
check() { # check LABEL PARENT NAME [nostage: the command stages no folder beside NAME]
    local label=$1 parent=$2 name=$3
    [ "${4:-}" = nostage ] && rm -rf "$parent/.$name.tmp-$dead-Marked"
    ok "$label: the victim folder is intact" '[ "$(snapshot)" = "$before" ]'
    ok "$label: planted symlinks are still there" '[ -L "$parent/.$name.tmp-$dead" ] && [ -L "$parent/.$name.tmp-$dead-AbCdEf" ]'
    ok "$label: a folder without the marker is left alone" '[ -f "$parent/.$name.tmp-$dead-nomark/user.txt" ]'
    ok "$label: a dead run's marked staging folder is removed" '[ ! -e "$parent/.$name.tmp-$dead-Marked" ]'
    ok "$label: no staging folder of this run is left" '[ -z "$(find "$parent" -maxdepth 1 -name ".$name.tmp-*" ! -name "*-nomark" ! -name "*-AbCdEf" ! -name "*.tmp-$dead" ! -name "*.tmp-$$")" ]'
}

# train into an existing folder (--overwrite) whose old-style temporary names are symlinks into the
# base model (this rewrote the base model's config.json once)
base=$tmp/base && cp -r "$g/tiny" "$base"
base_sum=$(sha256sum "$base"/* | sha256sum)
mkdir -p "$tmp/out"
for f in config.json adapter_config.json adapter_model.safetensors trainer_state.json preprocessor_config.json README.md loss.png; do
    ln -s "$base/config.json" "$tmp/out/$f.tmp"
done
ln -s "$victim" "$tmp/out/.checkpoint-1.tmp"
plant "$tmp" out
"$bin" train --model "$base" --data "$img" --label newthing --output "$tmp/out" --overwrite --epochs 1 --test-size 2 \
    --save-steps 1 --quiet >"$tmp/log" 2>&1
ok "train --overwrite: ran (exit $?)" '[ -s "$tmp/out/adapter_model.safetensors" ]'
ok "train: the base model is unchanged" '[ "$(sha256sum "$base"/* | sha256sum)" = "$base_sum" ]'
ok "train: the planted NAME.tmp symlinks are untouched" '[ -L "$tmp/out/config.json.tmp" ] && [ -L "$tmp/out/.checkpoint-1.tmp" ]'
check train "$tmp" out nostage
# the files a run writes as it goes (not atomically): a planted symlink at their names is refused,
# never followed, and the victim stays as it was
rm -rf "$tmp/logged" && mkdir -p "$tmp/logged"
ln -s "$victim/precious.txt" "$tmp/logged/trainer_log.jsonl"
"$bin" train --model "$base" --data "$img" --label newthing --output "$tmp/logged" --overwrite --epochs 1 --test-size 2 --quiet >"$tmp/log" 2>&1
rc=$?
ok "train: a symlink at trainer_log.jsonl is refused, named (exit $rc)" '[ $rc -eq 2 ] && grep -q "trainer_log.jsonl: cannot write the log" "$tmp/log"'
rm -rf "$tmp/logged" && mkdir -p "$tmp/logged"
ln -s "$victim" "$tmp/logged/runs"
"$bin" train --model "$base" --data "$img" --label newthing --output "$tmp/logged" --overwrite --epochs 1 --test-size 2 --quiet \
    --report-to tensorboard >"$tmp/log" 2>&1
rc=$?
ok "train: a symlink at runs/ is refused, named (exit $rc)" '[ $rc -eq 2 ] && grep -q "runs: not a folder this run can write into" "$tmp/log"'
ok "train: nothing was written into the folder runs/ pointed at" '[ -z "$(ls "$victim" | grep tfevents)" ] && [ "$(snapshot)" = "$before" ]'

plant "$tmp" merged
"$bin" merge --model "$base" --adapter "$tmp/out" --output "$tmp/merged" >/dev/null 2>&1
ok "merge: wrote the model" '[ -s "$tmp/merged/model.safetensors" ] && [ ! -e "$tmp/merged/.cgrad-stage" ]'
ok "merge: the output folder has the usual mode" '[ "$(stat -c %a "$tmp/merged")" = "$(umask -S >/dev/null; printf "%o" $((0777 & ~$(umask))))" ]'
check merge "$tmp" merged

plant "$tmp" v4
"$bin" train --model "$base" --data "$img" --label newthing --output "$tmp/v5" --epochs 1 --test-size 2 --quiet --peft-format v5 >/dev/null 2>&1
"$bin" convert-adapter "$tmp/v5" "$tmp/v4" --to v4 >/dev/null 2>&1
ok "convert-adapter: wrote the adapter" '[ -s "$tmp/v4/adapter_model.safetensors" ]'
check convert-adapter "$tmp" v4

plant "$tmp" ex
"$bin" explain --model "$base" --out "$tmp/ex" "$img/small_20x30.jpg" >/dev/null 2>&1
ok "explain: wrote the map" '[ -s "$tmp/ex/000_small_20x30.jpg.png" ]'
check explain "$tmp" ex

plant "$tmp" png
ln -s "$victim/config.json" "$tmp/px.safetensors.tmp"
"$bin" preprocess --model "$base" --out "$tmp/px.safetensors" --png "$tmp/png" "$img/small_20x30.jpg" >/dev/null 2>&1
ok "preprocess: wrote both outputs" '[ -s "$tmp/px.safetensors" ] && [ -s "$tmp/png/000_small_20x30.jpg.png" ]'
check preprocess "$tmp" png

# --out without --overwrite is never replaced, even when it appears while the command runs
echo mine > "$tmp/exists.safetensors"
"$bin" preprocess --model "$base" --out "$tmp/exists.safetensors" "$img/small_20x30.jpg" >/dev/null 2>&1
ok "preprocess: an existing --out is refused and kept" '[ $? -eq 2 ] && [ "$(cat "$tmp/exists.safetensors")" = mine ]'

# the output folder given is a symlink planted to a read-only victim: the victim is not written
# through a staging folder's cleanup (the kill -9 case: a real leftover of a dead run is removed)
"$bin" merge --model "$base" --adapter "$tmp/out" --output "$tmp/merged2" >/dev/null 2>&1 &
pid=$!
for i in $(seq 200); do [ -n "$(find "$tmp" -maxdepth 1 -name ".merged2.tmp-*")" ] && break; sleep 0.01; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
"$bin" merge --model "$base" --adapter "$tmp/out" --output "$tmp/merged2" --overwrite >/dev/null 2>&1
ok "merge after a kill -9: the dead run's staging folder is gone" '[ -z "$(find "$tmp" -maxdepth 1 -name ".merged2.tmp-*")" ]'
ok "merge after a kill -9: the output is complete" '[ -s "$tmp/merged2/model.safetensors" ]'

# stdout is an output too: a full device is exit 3 with a message
if [ -w /dev/full ]; then
    "$bin" predict --model "$base" --json "$img/small_20x30.jpg" >/dev/full 2>"$tmp/err"
    rc=$?
    ok "predict > /dev/full: exit 3 (got $rc)" '[ $rc -eq 3 ] && grep -q "cannot write the output: No space left on device" "$tmp/err"'
    "$bin" info "$base" >/dev/full 2>/dev/null
    ok "info > /dev/full: exit 3" '[ $? -eq 3 ]'
    "$bin" --help >/dev/full 2>/dev/null
    ok "--help > /dev/full: exit 3" '[ $? -eq 3 ]'
fi
# long paths: temporary names are never cut short, and a message keeps its cause however long the
# path (a checkpoint's temporary name was once cut to ".checkpoint-1.t")
deep="$tmp/$(python3 -c "print('/'.join(['d' * 200] * 19))")"
mkdir -p "$deep"
out="$deep/$(python3 -c "print('o' * (4030 - len('$deep')))")"
"$bin" train --model "$base" --data "$img" --label x --output "$out" --epochs 1 --test-size 2 --quiet --save-steps 1 >"$tmp/long.log" 2>&1
rc=$?
ok "a path near PATH_MAX: exit 3 (got $rc), the message ends with its cause" \
   '[ $rc -eq 3 ] && grep "deit_lora train: " "$tmp/long.log" | grep -q "\.tmp-[0-9]*-[A-Za-z0-9]\{6\}/[a-z_]*\.safetensors: cannot create a temporary file beside it: File name too long$"'
ok "the victim folder is intact at the end" '[ "$(snapshot)" = "$before" ]'
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
