# Predicted against measured on the live TensorRT-RTX engine, on a GPU machine without network: install the carried
# wheels as gpu_run_live.sh does, run benchmarks/gpu_predict.py (ResNet-50 and the encoder, batch 32, TensorRT and
# PyTorch compiled; it ends within 8 minutes), results to $OUT/predict on the lent machine, else docs/gpu/predict.
# Prepare the wheels first (`bash benchmarks/gpu_fetch_wheels.sh`) and carry them as for gpu_run_live.sh.
source benchmarks/gpu_install_wheels.sh
nvidia-smi -L
DEST=${OUT:-docs/gpu}/predict
mkdir -p $DEST
timeout ${PREDICT_TIMEOUT:-500} python3 benchmarks/gpu_predict.py --out $DEST/predict.md ${PREDICT_ARGS:-} 2>&1 \
  | grep -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn" | tee $DEST/run.log | tail -60
ls -la $DEST
