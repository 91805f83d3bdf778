# Sourced by gpu_run.sh: install the carried TensorRT-RTX wheels into /tmp/site unless a warm machine
# already has them (the first call carried .whlA to /tmp/stage, this one carries .whlB), and put them on PYTHONPATH.
export PYTHONUNBUFFERED=1
whl=/tmp/tensorrt_rtx_cu13_libs-1.4.0.76-py3-none-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/torch_tensorrt ]; then  # not `import torch_tensorrt`: it fails until the backend blocks the plugin
  if ! echo "$(cat .whlB/libs.sha256)  $whl" | sha256sum -c --status 2>/dev/null; then  # absent, or half joined
    cat ${STAGE:-/tmp/stage}/libs.part* .whlB/libs.part* > $whl.part && mv $whl.part $whl \
      && echo "$(cat .whlB/libs.sha256)  $whl" | sha256sum -c || { rm -f $whl; exit 3; }
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $whl .whlB/*.whl || exit 4
fi
export PYTHONPATH=$PWD:/tmp/site
