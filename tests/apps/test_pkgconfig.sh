#!/usr/bin/env bash
# Installs the build into a scratch prefix, then compiles and runs the examples the way a user
# would: with `pkg-config --cflags --libs cgrad-core` (the framework alone: xor_mlp, custom_op,
# char_gpt) or `cgrad` (with the data pipeline: mlp_fashion, cnn_fashion), against the installed
# headers and libraries; the framework-only programs must not load libpng, libjpeg or cJSON.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp" --no-rebuild >/dev/null
pc=$(find "$tmp" -name cgrad.pc | head -1)
[ -n "$pc" ] || { echo "cgrad.pc was not installed"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
[ -e "$(dirname "$pc")/cgrad-core.pc" ] || { echo "cgrad-core.pc was not installed"; exit 1; }
flags=$(pkg-config --define-variable=prefix="$tmp$prefix" --cflags --libs cgrad)
core=$(pkg-config --define-variable=prefix="$tmp$prefix" --cflags --libs cgrad-core)
case "$core" in *png*|*jpeg*|*cjson*) echo "cgrad-core's flags name an image or JSON library: $core"; exit 1;; esac
# no installed header includes mpi.h: a consumer needs no Open MPI development files (MPI may be in
# Libs.private, for a static link, never in Requires)
if grep -h '^Requires' "$(dirname "$pc")"/cgrad*.pc | grep -qi 'ompi\|mpi'; then echo "a .pc file requires MPI's"; exit 1; fi
if grep -rl 'mpi\.h' "$(pkg-config --define-variable=prefix="$tmp$prefix" --variable=includedir cgrad)/cgrad"; then
    echo "an installed header includes mpi.h"; exit 1
fi
cc -std=c11 "$src/examples/xor_mlp.c" $core -o "$tmp/xor_mlp"
libdir=$(pkg-config --define-variable=prefix="$tmp$prefix" --variable=libdir cgrad)
LD_LIBRARY_PATH="$libdir" "$tmp/xor_mlp"
# a framework-only program loads no image, JSON or compression library, directly or through cgrad
loaded=$(LD_LIBRARY_PATH="$libdir" ldd "$tmp/xor_mlp")
echo "$loaded" | grep -q 'libcgrad-core' || { echo "xor_mlp does not use libcgrad-core"; exit 1; }
if echo "$loaded" | grep -E 'libpng|libjpeg|libcjson|libcgrad\.so'; then echo "a framework-only program loads the above"; exit 1; fi
echo "framework only: xor_mlp links libcgrad-core without libpng, libjpeg or cJSON"
# only public headers are installed, and they are C++-clean (extern "C")
inc=$(pkg-config --define-variable=prefix="$tmp$prefix" --variable=includedir cgrad)/cgrad
for internal in kernels/fastmath.h kernels/sgemm.h kernels/sgemm_isa.h kernels/qgemm.h kernels/scratch.h kernels/kernels_ext.h base/strbuf.h models/json_strict.h \
    models/vit_ops.h models/vit_kernels.h train/trainer_ckpt.h; do
    [ ! -e "$inc/$internal" ] || { echo "internal header $internal was installed"; exit 1; }
done
# the framework's headers know no model: nothing of the ViT (its fused ops and kernels are models/'s)
if grep -il -E '(^|[^a-z])vit([^a-z]|$)|deit|mlp_forward|lora_linear' "$inc"/base/* "$inc"/kernels/* "$inc"/tensor/* "$inc"/formats/* "$inc"/autograd/* "$inc"/nn/* "$inc"/optim/* "$inc"/cgrad_core.h; then
    echo "a framework header above names the ViT"; exit 1
fi
[ -e "$inc/nn/nn.h" ] && [ -e "$inc/optim/optim.h" ] && [ -e "$inc/data/dataset.h" ] && [ -e "$inc/train/trainer.h" ] &&
    [ -e "$inc/cgrad_core.h" ] && [ -e "$inc/formats/weights.h" ] && [ -e "$inc/base/context.h" ] || { echo "a public header is missing"; exit 1; }
if command -v g++ >/dev/null; then
    # the headers' helpers compile as C++ too (SHAPE once failed under g++: "taking address of temporary array")
    printf '#include <cgrad.h>\nint main() { Ctx *c = ctx_new(1024); Tensor *t = tensor_zeros(c, DT_F32, SHAPE(2, 3));\n'\
'  bool ok = ctx_ok(c) && t && tensor_numel(t) == 6; ctx_free(c); return ok ? 0 : 1; }\n' > "$tmp/use.cpp"
    for cxx in g++ clang++; do
        command -v $cxx >/dev/null || continue
        $cxx "$tmp/use.cpp" $flags -o "$tmp/use_cpp" && LD_LIBRARY_PATH="$libdir" "$tmp/use_cpp" || { echo "cgrad.h does not serve C++ ($cxx)"; exit 1; }
    done
fi
# the kernels are the extension machinery's (autograd/extend.h), not in the umbrella header's namespace
printf '#include <cgrad_core.h>\nint main(void) { return gemm_f32 != 0; }\n' > "$tmp/kern.c"
if cc -std=c11 -Werror=implicit-function-declaration -c "$tmp/kern.c" $core -o "$tmp/kern.o" 2>/dev/null; then
    echo "cgrad_core.h exposes the kernels (gemm_f32)"; exit 1
fi
echo "installed headers: public only, usable from C and C++"
# CMake: find_package(cgrad) and its imported targets, a C consumer of cgrad::core and a C++ one of cgrad::cgrad
if command -v cmake >/dev/null; then
    mkdir -p "$tmp/cm"
    cp "$src/examples/xor_mlp.c" "$tmp/cm/"
    printf '#include <cgrad.h>\nint main() { Ctx *c = ctx_new(1024); Tensor *t = tensor_zeros(c, DT_F32, SHAPE(2, 3));\n'\
'  bool ok = ctx_ok(c) && t && tensor_numel(t) == 6; ctx_free(c); return ok ? 0 : 1; }\n' > "$tmp/cm/use.cpp"
    cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer C CXX)
find_package(cgrad 0.1 REQUIRED)
add_executable(xor_mlp xor_mlp.c)
target_link_libraries(xor_mlp PRIVATE cgrad::core)
set_target_properties(xor_mlp PROPERTIES C_STANDARD 11)
add_executable(use_cpp use.cpp)
target_link_libraries(use_cpp PRIVATE cgrad::cgrad)
CM
    cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp$prefix" >"$tmp/cm.log" 2>&1 &&
        cmake --build "$tmp/cm/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; echo "find_package(cgrad) failed"; exit 1; }
    LD_LIBRARY_PATH="$libdir" "$tmp/cm/build/xor_mlp" >/dev/null && LD_LIBRARY_PATH="$libdir" "$tmp/cm/build/use_cpp" ||
        { echo "the CMake-built consumers do not run"; exit 1; }
    echo "CMake: find_package(cgrad) builds a C consumer of cgrad::core and a C++ one of cgrad::cgrad"
else
    echo "skip: the CMake consumers need cmake"
fi
# beside the programs: a man page each (from their --help: every command of deit_lora is in it),
# bash completion of deit_lora's commands and flags, share/doc/cgrad
share=$tmp$prefix/share
for page in deit_lora lora_demo; do
    [ -s "$share/man/man1/$page.1" ] || { echo "no man page for $page"; exit 1; }
done
if command -v groff >/dev/null; then
    txt=$(groff -man -Tascii "$share/man/man1/deit_lora.1" 2>/dev/null | col -b 2>/dev/null || true)
    for cmd in train predict serve explain; do
        echo "$txt" | grep -q "deit_lora $cmd" || { echo "the man page lacks the $cmd command"; exit 1; }
    done
    echo "$txt" | grep -q -- "--request-timeout" || { echo "the man page lacks serve's flags"; exit 1; }
fi
comp=$share/bash-completion/completions/deit_lora
[ -s "$comp" ] || { echo "no bash completion installed"; exit 1; }
got=$(PATH="$tmp$prefix/bin:$PATH" LD_LIBRARY_PATH="$libdir" bash -c 'source "$1"; COMP_WORDS=(deit_lora pre); COMP_CWORD=1; _deit_lora; echo "${COMPREPLY[*]}"' _ "$comp")
[ "$got" = "predict preprocess" ] || { echo "completion of 'deit_lora pre': '$got'"; exit 1; }
got=$(PATH="$tmp$prefix/bin:$PATH" LD_LIBRARY_PATH="$libdir" bash -c 'source "$1"; COMP_WORDS=(deit_lora train --ep); COMP_CWORD=2; _deit_lora; echo "${COMPREPLY[*]}"' _ "$comp")
[ "$got" = "--epochs" ] || { echo "completion of 'deit_lora train --ep': '$got'"; exit 1; }
for f in README.md LICENSE examples/xor_mlp.c docs/ops.md docs/library.md docs/deit_lora.md docs/serving.md; do
    [ -s "$share/doc/cgrad/$f" ] || { echo "share/doc/cgrad/$f was not installed"; exit 1; }
done
echo "man pages, bash completion and share/doc/cgrad installed"
# an op of one's own, through the extender header (docs/ops.md)
cc -std=c11 "$src/examples/custom_op.c" $core -o "$tmp/custom_op"
LD_LIBRARY_PATH="$libdir" "$tmp/custom_op"
# the MLP example (1 epoch of all 60,000 images) and the CNN, ResNet and GRU examples, shortened
# (the full runs are in docs/library.md)
if [ -d /usr/share/datasets/fashion-mnist ]; then
    cc -std=c11 -O2 "$src/examples/mlp_fashion.c" $flags -lm -o "$tmp/mlp_fashion"
    MIN_ACC=0.80 LD_LIBRARY_PATH="$libdir" "$tmp/mlp_fashion" 1
    cc -std=c11 -O2 "$src/examples/cnn_fashion.c" $flags -lm -o "$tmp/cnn_fashion"
    out=$(SAVE="$tmp/cnn.safetensors" MIN_ACC=0.70 LD_LIBRARY_PATH="$libdir" "$tmp/cnn_fashion" 1 6400)
    echo "$out"
    # the saved parameter set is PyTorch's state_dict of the same nn.Module: strict load, same accuracy
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then
        c_acc=$(echo "$out" | sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p')
        t_acc=$(/usr/bin/python3 "$src/tests/apps/cnn_state_dict.py" "$tmp/cnn.safetensors" /usr/share/datasets/fashion-mnist | sed -n 's/^torch accuracy //p')
        /usr/bin/python3 -c "import sys; c, t = float(sys.argv[1]) / 100, float(sys.argv[2]); sys.exit(abs(c - t) > 0.0005)" "$c_acc" "$t_acc" ||
            { echo "PyTorch's accuracy with the saved parameters is $t_acc, the C program's $c_acc%"; exit 1; }
        echo "PyTorch loads the saved parameters (strict) and gets the same accuracy: $t_acc"
    fi
    # and data-parallel over 2 MPI ranks (with an MPI build and mpirun)
    if command -v mpirun >/dev/null && pkg-config --exists ompi-c; then
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 120 mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 \
            -x MIN_ACC=0.70 -x LD_LIBRARY_PATH="$libdir" "$tmp/cnn_fashion" 1 6400 | grep "data-parallel"
    fi
    # the ResNet (BatchNorm), the GRU over rows and the VAE, shortened (1 epoch of 6,400 images each)
    cc -std=c11 -O2 "$src/examples/resnet_fashion.c" $flags -lm -o "$tmp/resnet_fashion"
    MIN_ACC=0.60 LD_LIBRARY_PATH="$libdir" "$tmp/resnet_fashion" 1 6400 | grep "test accuracy"
    cc -std=c11 -O2 "$src/examples/gru_rows.c" $flags -lm -o "$tmp/gru_rows"
    MIN_ACC=0.60 LD_LIBRARY_PATH="$libdir" "$tmp/gru_rows" 1 6400 | grep "test accuracy"
    # the VAE: its test ELBO and a PNG grid of samples
    cc -std=c11 -O2 "$src/examples/vae_fashion.c" $flags -lm -o "$tmp/vae_fashion"
    MIN_ELBO=-330 LD_LIBRARY_PATH="$libdir" "$tmp/vae_fashion" 1 6400 /usr/share/datasets/fashion-mnist "$tmp/samples.png" | grep "ELBO"
    /usr/bin/python3 -c "import struct, sys; d = open(sys.argv[1], 'rb').read(); sys.exit(not (d[:8] == b'\x89PNG\r\n\x1a\n' and struct.unpack('>II', d[16:24]) == (242, 242)))" \
        "$tmp/samples.png" || { echo "the VAE's samples are not an 8 x 8 grid PNG"; exit 1; }
else
    echo "skip: the CNN example needs dataset-fashion-mnist"
fi
# the character-level GPT on the GPL's text (base-files), shortened: 120 of its 500 steps
if [ -r /usr/share/common-licenses/GPL-3 ]; then
    cc -std=c11 -O2 "$src/examples/char_gpt.c" $core -lm -o "$tmp/char_gpt"
    MAX_LOSS=2.6 LD_LIBRARY_PATH="$libdir" "$tmp/char_gpt" 120 | grep -E "training loss|sample"
fi
