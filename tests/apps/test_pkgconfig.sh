#!/usr/bin/env bash
# Installs the build into a scratch prefix, then compiles and runs examples/xor_mlp.c the way a
# user would: with `pkg-config --cflags --libs cgrad`, against the installed headers and library.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp" --no-rebuild >/dev/null
pc=$(find "$tmp" -name cgrad.pc | head -1)
[ -n "$pc" ] || { echo "cgrad.pc was not installed"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --define-variable=prefix="$tmp$prefix" --cflags --libs cgrad)
cc -std=c11 "$src/examples/xor_mlp.c" $flags -o "$tmp/xor_mlp"
libdir=$(pkg-config --define-variable=prefix="$tmp$prefix" --variable=libdir cgrad)
LD_LIBRARY_PATH="$libdir" "$tmp/xor_mlp"
