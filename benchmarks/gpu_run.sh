# The one script for the lent GPU machine (no network): install the carried wheels, then run
# `python3 benchmarks/run.py SUBCOMMAND [OPTIONS]` for each subcommand given, with the libraries' noise filtered.
#
#   bash benchmarks/gpu_run.sh SUBCOMMAND [OPTIONS] [+ SUBCOMMAND [OPTIONS]]...
#   e.g. bash benchmarks/gpu_run.sh live --out $OUT/live + predict-live --out $OUT/predict/predict.md
#
# Wheels: TensorRT-RTX's are prepared here with `bash benchmarks/gpu_fetch_wheels.sh`; a first device call carries
# .whlA and copies it to /tmp/stage (the repo is copied afresh each call), the next carries .whlB and runs this script
# (gpu_install_wheels.sh joins and installs them; a warm machine keeps them). Ray's wheel (for `sweep --executor ray`)
# travels the same way as .whlB/ray.part* beside the first half in /tmp/raystage. Without carried wheels nothing is
# installed (the PyTorch-only subcommands: suite, search, sweep).
# Each subcommand's output goes to ${OUT:-out}/SUBCOMMAND.log (the lent machine brings $OUT back); folders a
# subcommand leaves under $OUT (engine profiles) are packed as .tgz, since deep folders do not come back.
# LIVE_TESTS=1 runs tests/test_live_tensorrt.py after the last subcommand; RUN_TIMEOUT (seconds, default 540) bounds
# the whole call (the lent machine's limit is 600).
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
DEST=${OUT:-out}
mkdir -p "$DEST"
# The one warning filter: CUDA's USDT probes, tqdm bars, and the libraries' Future/User warnings and their source lines.
quiet() { grep --line-buffered -v "USDT\|\[00:\|FutureWarning\|return cls.__new__\|_warn_once\|UserWarning\|warnings.warn\|tensor = torch"; }

if [ -f .whlB/libs.sha256 ]; then
  source benchmarks/gpu_install_wheels.sh
fi
if [ -f .whlB/ray.sha256 ]; then
  whl=/tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl
  cat "${RAY_STAGE:-/tmp/raystage}"/ray.part* .whlB/ray.part* > $whl && echo "$(cat .whlB/ray.sha256)  $whl" | sha256sum -c \
    || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $whl \
    "${RAY_STAGE:-/tmp/raystage}"/*.whl || exit 4
  export PYTHONPATH=$PWD:/tmp/site
fi
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.device_count(), 'GPUs')"

limit=${RUN_TIMEOUT:-540}
run_one() {
  local left=$((limit - SECONDS))
  [ $left -gt 10 ] || { echo "skipped $1: the call's time is spent"; return; }
  echo "== python3 benchmarks/run.py $* (at most ${left} s)"
  timeout $left python3 benchmarks/run.py "$@" 2>&1 | quiet | tee "$DEST/$1.log" | tail -100
}
args=()
for word in "$@" +; do
  if [ "$word" = "+" ]; then
    [ ${#args[@]} -gt 0 ] && run_one "${args[@]}"
    args=()
  else
    args+=("$word")
  fi
done

left=$((limit - SECONDS))
if [ -n "${LIVE_TESTS:-}" ] && [ $left -gt 60 ]; then
  timeout $left python3 -m pytest -q -m tensorrt -p no:cacheprovider tests/test_live_tensorrt.py 2>&1 | tail -15 \
    | tee "$DEST/live_tests.log"
fi
for folder in "$DEST"/*/*/; do  # e.g. $OUT/live/profiles/: one archive each, on the lent machine only
  [ -n "${OUT:-}" ] && [ -d "$folder" ] && tar czf "${folder%/}.tgz" -C "$(dirname "$folder")" "$(basename "$folder")" \
    && rm -rf "$folder"
done
ls -la "$DEST"
