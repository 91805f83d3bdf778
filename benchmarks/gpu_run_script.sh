# Any GPU script on the lent machine, without network: install the carried TensorRT-RTX wheels where they are not
# yet importable (as gpu_run_live.sh does), then run `python3 benchmarks/<script> <args>`, its output kept in
# $OUT/<name>/run.log on the lent machine (the tool brings $OUT back), else docs/gpu/<name>/run.log.
# Usage: bash benchmarks/gpu_run_script.sh NAME SCRIPT [ARGS...]    (RUN_TIMEOUT: seconds, default 540)
name=$1
script=$2
shift 2
source benchmarks/gpu_install_wheels.sh
nvidia-smi -L
DEST=${OUT:-docs/gpu}/$name
mkdir -p $DEST
timeout ${RUN_TIMEOUT:-540} python3 benchmarks/$script "$@" 2>&1 \
  | grep -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn" | tee $DEST/run.log | tail -100
