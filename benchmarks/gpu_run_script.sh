# Any GPU script on the lent machine, without network: install the carried TensorRT-RTX wheels where they are not
# yet importable (as gpu_run_live.sh does), then run `python3 benchmarks/<script> <args>`, its output kept in
# $OUT/<name>/run.log on the lent machine (the tool brings $OUT back), else docs/gpu/<name>/run.log.
# Usage: bash benchmarks/gpu_run_script.sh NAME SCRIPT [ARGS...]    (RUN_TIMEOUT: seconds, default 540)
export PYTHONUNBUFFERED=1
name=$1; script=$2; shift 2
whl=/tmp/tensorrt_rtx_cu13_libs-1.4.0.76-py3-none-manylinux_2_28_x86_64.whl
export PYTHONPATH=$PWD:/tmp/site
if [ ! -d /tmp/site/torch_tensorrt ]; then
  if [ ! -f $whl ]; then
    cat ${STAGE:-/tmp/stage}/libs.part* .whlB/libs.part* > $whl && echo "$(cat .whlB/libs.sha256)  $whl" | sha256sum -c || exit 3
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $whl .whlB/*.whl || exit 4
fi
nvidia-smi -L
DEST=${OUT:-docs/gpu}/$name
mkdir -p $DEST
timeout ${RUN_TIMEOUT:-540} python3 benchmarks/$script "$@" 2>&1 \
  | grep -v "USDT\|FutureWarning\|return cls.__new__\|UserWarning\|warnings.warn" | tee $DEST/run.log | tail -100
