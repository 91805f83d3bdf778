# Fetch the TensorRT-RTX wheels for a GPU machine without network (Python 3.12, x86-64, torch 2.11) and lay them
# out for two transfers under 64 MiB each: .whlA (first half of the 86 MB libs wheel) and .whlB (the other half,
# its sha256 and the small wheels). Run here, in the repo root; both folders are kept out of git
# (.git/info/exclude). Then: a first device call carries .whlA and copies it to /tmp/stage; a second carries .whlB
# and runs `bash benchmarks/gpu_run.sh SUBCOMMAND...` (docs/live-engine.md, "On the GPU machine").
set -euo pipefail
TTRT=${TTRT:-2.11.0}; TRT=${TRT:-1.4.0.76}
for d in .whl .whlA .whlB; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
mkdir -p .whl/sdist .whlA .whlB
plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $plat -d .whl \
    "torch-tensorrt-rtx==$TTRT" "tensorrt-rtx-cu13-libs==$TRT" "tensorrt-rtx-cu13-bindings==$TRT" dllist
python3 -m pip download -q --no-deps --no-binary=:all: -d .whl/sdist "tensorrt-rtx-cu13==$TRT" "tensorrt-rtx==$TRT"
python3 -m pip wheel -q --no-deps -w .whl .whl/sdist/*.tar.gz   # plain setuptools packages: pure-Python wheels
libs=$(ls .whl/tensorrt_rtx_cu13_libs-"$TRT"-*.whl)
rm -f .whlA/* .whlB/*
split -b 44000000 "$libs" .whlA/libs.part
mv .whlA/libs.partab .whlB/
sha256sum "$libs" | cut -d' ' -f1 > .whlB/libs.sha256
cp .whl/dllist-*.whl .whl/tensorrt_rtx-*.whl .whl/tensorrt_rtx_cu13-*.whl .whl/tensorrt_rtx_cu13_bindings-*.whl \
   .whl/torch_tensorrt_rtx-*.whl .whlB/
du -sh .whlA .whlB
