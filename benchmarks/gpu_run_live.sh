# The live TensorRT-RTX run on a GPU machine without network: install the carried wheels, run the figures script
# and (LIVE_TESTS=1) the live-engine tests; results go to $OUT/live on the lent machine (the tool brings $OUT back),
# else to docs/gpu/live. Prepare the wheels here first with `bash benchmarks/gpu_fetch_wheels.sh`.
# The 86 MB libs wheel travels in two halves: a first call carries .whlA and copies it to /tmp/stage (outside the
# repo, which is copied afresh each call); this call carries .whlB (the other half, its sha256, the small wheels).
# On a machine with two GPUs every model still runs in this one command: ResNet-50 and BERT-base on GPU 0, the
# reference models and the encoder on GPU 1 (one process per GPU, so no two timings share a device), merged into
# one table; on one GPU they run one after the other (LIVE_ARGS then applies, e.g. "--models resnet50").
source benchmarks/gpu_install_wheels.sh
nvidia-smi -L
python3 -c "import mixprec_explorer.backends.tensorrt as t; m=t._load(); print('loaded via backend, plugin blocked:', m.plugin_blocked)" 2>&1 | tail -2
DEST=${OUT:-docs/gpu}/live
mkdir -p $DEST /tmp/live
filter() { grep --line-buffered -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn"; }
limit=${LIVE_TIMEOUT:-520}  # seconds per process; the call's limit is 600
gpus=$(nvidia-smi -L | wc -l)
if [ "$gpus" -ge 2 ] && [ -z "${LIVE_ARGS:-}" ]; then
  CUDA_VISIBLE_DEVICES=0 timeout $limit python3 benchmarks/gpu_live_engine.py --out /tmp/live/gpu0 \
    --models resnet50,bert-base 2>&1 | filter > $DEST/run_gpu0.log &
  ( CUDA_VISIBLE_DEVICES=1 timeout $limit python3 benchmarks/gpu_live_engine.py --out /tmp/live/gpu1 \
      --models "reference explicit,reference autocast,encoder" 2>&1 | filter > $DEST/run_gpu1.log
    left=$((limit - SECONDS))  # the live tests after the encoder, on its GPU, within what is left
    if [ -n "${LIVE_TESTS:-}" ] && [ $left -gt 60 ]; then
      CUDA_VISIBLE_DEVICES=1 timeout $left python3 -m pytest -q -m tensorrt -p no:cacheprovider \
        tests/test_live_tensorrt.py 2>&1 | tail -15 > $DEST/tests.log
    fi ) &
  wait
  python3 benchmarks/gpu_live_engine.py --merge /tmp/live/gpu0 /tmp/live/gpu1 --out /tmp/live 2>&1 | tail -60
  tail -3 $DEST/run_gpu0.log $DEST/run_gpu1.log
  (cd /tmp/live && tar czf $DEST/profiles.tgz gpu0/profiles gpu1/profiles 2>/dev/null)
else
  timeout $limit python3 benchmarks/gpu_live_engine.py --out /tmp/live ${LIVE_ARGS:-} 2>&1 | filter \
    | tee $DEST/run.log | tail -80
  tar czf $DEST/profiles.tgz -C /tmp/live profiles 2>/dev/null
  if [ -n "${LIVE_TESTS:-}" ]; then
    timeout 150 python3 -m pytest -q -m tensorrt -p no:cacheprovider tests/test_live_tensorrt.py 2>&1 | tail -15 \
      > $DEST/tests.log
  fi
fi
cp /tmp/live/live_engine.md /tmp/live/live_engine.json $DEST/ 2>/dev/null
cat $DEST/tests.log 2>/dev/null
ls -la $DEST
