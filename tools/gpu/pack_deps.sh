#!/usr/bin/env bash
# Run HERE (the development machine, after tools/setup.sh), before a GPU session: packs what the GPU
# machines lack into .gpudeps/ (ignored by git; name it in the device tool's `carry`):
#   headers + shared libraries of fmt, CLI11, nlohmann-json, doctest, toml++ (headers only), zlib, libjpeg, libpng (Debian's,
#   glibc-compatible with the GPU image), and the Fashion-MNIST files (30 MB). About 33 MB in all.
# OpenBLAS (36 MB) is not packed: the GPU build uses ST_USE_OPENBLAS=OFF (a plain loop CPU GEMM,
# enough for the parity references). tools/gpu/check.sh reads .gpudeps/ on the GPU machine.
#
# --backup also builds the backup that check.sh runs if the build on the GPU machine fails:
# sparsetrain, sparsetrain_tests and kernelbench built here with static zlib/libpng/libjpeg, header-only
# fmt, static libstdc++/libgcc, -march=x86-64-v3, no OpenBLAS, sm_90, stripped, into .gpudeps/backup/bin
# (libgomp beside them in .gpudeps/backup/lib; cuDNN and cuBLAS come from the GPU image's wheels). About
# 15 MB more; a full CUDA build here takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
backup=0
case "${1:-}" in
  --backup) backup=1 ;;
  "") ;;
  *) echo "pack_deps.sh: unknown argument '$1' (expected --backup or nothing)" >&2; exit 2 ;;
esac
deps=.gpudeps
arch=x86_64-linux-gnu
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib/$arch/cmake" "$deps/share/cmake" "$deps/data/fashion-mnist"
cp -a /usr/include/fmt /usr/include/CLI /usr/include/nlohmann /usr/include/doctest /usr/include/toml++ "$deps/include/"
cp -a /usr/include/zlib.h /usr/include/zconf.h /usr/include/jpeglib.h /usr/include/jerror.h /usr/include/jmorecfg.h \
      /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h "$deps/include/"
cp -a /usr/include/$arch/jconfig.h "$deps/include/"
for lib in libfmt libz libjpeg libpng16 libpng; do
  cp -a /usr/lib/$arch/$lib.so* "$deps/lib/$arch/" 2>/dev/null || cp -a /lib/$arch/$lib.so* "$deps/lib/$arch/"
done
# absolute symlinks would not travel: make every link inside the pack relative
for link in "$deps/lib/$arch"/*.so*; do
  [ -L "$link" ] && ln -sfn "$(basename "$(readlink -f "$link")")" "$link"
done
cp -a /usr/lib/$arch/cmake/fmt "$deps/lib/$arch/cmake/"
cp -a /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json "$deps/share/cmake/"
cp -a /usr/share/datasets/fashion-mnist/*.gz "$deps/data/fashion-mnist/"
grep -qx '/.gpudeps/' .git/info/exclude 2>/dev/null || echo '/.gpudeps/' >> .git/info/exclude

if [ $backup -eq 1 ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  cmake -S . -B build-backup -DCMAKE_BUILD_TYPE=Release -DST_STATIC_DEPS=ON -DST_MARCH=x86-64-v3 \
        -DST_USE_OPENBLAS=OFF > /dev/null
  cmake --build build-backup -j "$(nproc)" --target sparsetrain sparsetrain_tests kernelbench
  mkdir -p "$deps/backup/bin" "$deps/backup/lib"
  for b in sparsetrain sparsetrain_tests kernelbench; do
    cp build-backup/$b "$deps/backup/bin/"
    strip --strip-unneeded "$deps/backup/bin/$b"
  done
  cp -L "$(g++ -print-file-name=libgomp.so.1)" "$deps/backup/lib/"
  echo "pack_deps: backup build; the shared libraries it needs (the GPU image must provide the CUDA ones):"
  readelf -d "$deps/backup/bin/sparsetrain_tests" | grep NEEDED | sed 's/.*\[\(.*\)\]/  \1/'
fi
du -sh "$deps"
