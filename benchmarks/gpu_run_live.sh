# The live TensorRT-RTX run on a GPU machine without network: install the carried wheels, run the figures script
# and (LIVE_TESTS=1) the live-engine tests; results go to $OUT/live on the lent machine (the tool brings $OUT back),
# else to docs/gpu/live. Prepare the wheels here first with `bash benchmarks/gpu_fetch_wheels.sh`.
# The 86 MB libs wheel travels in two halves: a first call carries .whlA and copies it to /tmp/stage (outside the
# repo, which is copied afresh each call); this call carries .whlB (the other half, its sha256, the small wheels).
export PYTHONUNBUFFERED=1
whl=/tmp/tensorrt_rtx_cu13_libs-1.4.0.76-py3-none-manylinux_2_28_x86_64.whl
cat ${STAGE:-/tmp/stage}/libs.part* .whlB/libs.part* > $whl && echo "$(cat .whlB/libs.sha256)  $whl" | sha256sum -c || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $whl .whlB/*.whl || exit 4
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi -L
python3 -c "import torch_tensorrt, tensorrt; print('torch_tensorrt', torch_tensorrt.__version__, tensorrt._package_name, tensorrt.__version__)" 2>&1 | tail -2
python3 -c "import mixprec_explorer.backends.tensorrt as t; m=t._load(); print('loaded via backend, plugin blocked:', m.plugin_blocked)" 2>&1 | tail -2
DEST=${OUT:-docs/gpu}/live
mkdir -p $DEST
timeout ${LIVE_TIMEOUT:-420} python3 benchmarks/gpu_live_engine.py --out /tmp/live ${LIVE_ARGS:-} 2>&1 | grep -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn" | tee $DEST/run.log | tail -80
cp /tmp/live/live_engine.md /tmp/live/live_engine.json $DEST/ 2>/dev/null
tar czf $DEST/profiles.tgz -C /tmp/live profiles 2>/dev/null
if [ -n "${LIVE_TESTS:-}" ]; then timeout 200 python3 -m pytest -q -m tensorrt -p no:cacheprovider tests/test_live_tensorrt.py 2>&1 | tail -15 | tee $DEST/tests.log; fi
ls -la $DEST
