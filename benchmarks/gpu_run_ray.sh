# GPU run 4: the multi-GPU sweep on Ray, on the lent two-GPU machine (its image has no Ray).
# Ray's wheel (79 MB) is over one call's 64 MiB carry limit, so it travels in two halves: a first call carries
# .whlA (half + jsonschema's wheels) and copies it to /tmp/raystage (outside the repo: the repo is copied afresh each call); this second call carries .whlB (the other half).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
quiet() { grep -v "USDT\|\[00:\|FutureWarning\|return cls.__new__\|_warn_once\|UserWarning\|tensor = torch"; }
whl=/tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl
cat ${STAGE:-/tmp/raystage}/ray.part* .whlB/ray.part* > $whl && echo "$(cat .whlB/ray.sha256)  $whl" | sha256sum -c || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $whl ${STAGE:-/tmp/raystage}/*.whl || exit 4
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi -L
python3 -c "import ray; print('ray', ray.__version__)"
timeout 400 python3 benchmarks/gpu_sweep.py --executor ray --mode compiled --points 6 2>&1 | tee $OUT/sweep_ray.txt | quiet
