# ort_setup.sh: what the scripts that run ONNX Runtime beside cgrad and PyTorch share (sourced from
# the project's root by ort_compare.sh and int8_compare.sh): the checks for a build, python3-torch,
# node and npm; onnxruntime-node installed into bench/.ort (npm's install script skipped: it only
# fetches GPU parts); $bin, $ort, and a scratch folder $dir removed at exit.
bin=build/apps/deit_lora
[ -x "$bin" ] || { echo "build first (meson setup build && ninja -C build)" >&2; exit 2; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs python3-torch" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "needs node and npm (apt-get install nodejs npm)" >&2; exit 2; }
ort=bench/.ort
[ -d "$ort/node_modules/onnxruntime-node" ] || npm install --silent --ignore-scripts --prefix "$ort" onnxruntime-node >/dev/null
cp bench/ort_bench.js "$ort/"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
