# The search end to end on the live TensorRT-RTX engine, on a GPU machine without network: install the carried wheels
# as gpu_run_predict.sh does, run benchmarks/gpu_search_live.py (ResNet-50, the encoder as a cast graph and ViT-B/16,
# batch 32, budgets 1e-3 and 3e-4: six searches from the Explorer to the exported plan, within about 9 minutes);
# results to $OUT/search on the lent machine, else docs/gpu/search (search_live.md, search_live.json, the exported
# plans and run.log). Prepare the wheels first (`bash benchmarks/gpu_fetch_wheels.sh`) and carry them as for
# gpu_run_live.sh: a first call carries .whlA and copies it to /tmp/stage, this call carries .whlB.
source benchmarks/gpu_install_wheels.sh
nvidia-smi -L
DEST=${OUT:-docs/gpu}/search
mkdir -p $DEST
timeout ${SEARCH_TIMEOUT:-530} python3 benchmarks/gpu_search_live.py --out $DEST --budget-s ${SEARCH_BUDGET_S:-400} \
  ${SEARCH_ARGS:-} 2>&1 | grep -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn" \
  | tee $DEST/run.log | tail -80
ls -la $DEST
