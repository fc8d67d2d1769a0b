#!/usr/bin/env bash
# Run HERE (the development machine, after tools/setup.sh), before a GPU session: packs what the GPU
# machines lack into .gpudeps/ (ignored by git; name it in the device tool's `carry`):
#   headers + shared libraries of fmt, CLI11, nlohmann-json, doctest, zlib, libjpeg, libpng (Debian's,
#   glibc-compatible with the GPU image), and the Fashion-MNIST files (30 MB). About 33 MB in all.
# OpenBLAS (36 MB) is not packed: the GPU build uses ST_USE_OPENBLAS=OFF (a plain loop CPU GEMM,
# enough for the parity references). tools/gpu/run_all.sh reads .gpudeps/ on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=.gpudeps
arch=x86_64-linux-gnu
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib/$arch/cmake" "$deps/share/cmake" "$deps/data/fashion-mnist"
cp -a /usr/include/fmt /usr/include/CLI /usr/include/nlohmann /usr/include/doctest "$deps/include/"
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
du -sh "$deps"
