# The live TensorRT-RTX run on a GPU machine without network: install the carried wheels, run the figures script
# and (LIVE_TESTS=1) the live-engine tests; results go to $OUT/live on the lent machine (the tool brings $OUT back),
# else to docs/gpu/live. Prepare the wheels here first with `bash benchmarks/gpu_fetch_wheels.sh`.
# The 86 MB libs wheel travels in two halves: a first call carries .whlA and copies it to /tmp/stage (outside the
# repo, which is copied afresh each call); this call carries .whlB (the other half, its sha256, the small wheels).
# Every model runs in this one command, one after the other (about 7 minutes on an H200). Two models side by side
# on two GPUs of one host slowed the CPU-bound rows by up to 60 % (BERT-base's 13 engines, torch compiled:
# docs/gpu/live/live_engine_h200_run9_two_gpus_side_by_side.md), so timings share no machine. LIVE_ARGS, e.g.
# "--models resnet50", runs a part; `gpu_live_engine.py --merge DIR...` joins parts into one table.
source benchmarks/gpu_install_wheels.sh
nvidia-smi -L
python3 -c "import mixprec_explorer.backends.tensorrt as t; m=t._load(); print('loaded via backend, plugin blocked:', m.plugin_blocked)" 2>&1 | tail -2
DEST=${OUT:-docs/gpu}/live
mkdir -p $DEST /tmp/live
filter() { grep --line-buffered -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn"; }
limit=${LIVE_TIMEOUT:-540}  # seconds; the call's limit is 600
timeout $limit python3 benchmarks/gpu_live_engine.py --out /tmp/live ${LIVE_ARGS:-} 2>&1 | filter \
  | tee $DEST/run.log | tail -80
tar czf $DEST/profiles.tgz -C /tmp/live profiles 2>/dev/null
left=$((limit - SECONDS))  # the live tests within what is left of the call
if [ -n "${LIVE_TESTS:-}" ] && [ $left -gt 60 ]; then
  timeout $left python3 -m pytest -q -m tensorrt -p no:cacheprovider tests/test_live_tensorrt.py 2>&1 | tail -15 \
    > $DEST/tests.log
fi
cp /tmp/live/live_engine.md /tmp/live/live_engine.json $DEST/ 2>/dev/null
cat $DEST/tests.log 2>/dev/null
ls -la $DEST
