set -x
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, networkx, numpy, tqdm; print(torch.__version__, torch.version.cuda, torch.cuda.device_count())"
python3 -c "import plotly" 2>&1 | tail -1
python3 -c "import rich" 2>&1 | tail -1
mkdir -p /tmp/suite
timeout 300 python3 benchmarks/gpu_suite.py --out /tmp/suite 2>&1 | grep -v "^torch \|USDT\|\[00:" 
cp /tmp/suite/rows.md $OUT/ 2>/dev/null; cp /tmp/suite/gpu_suite.md /tmp/suite/gpu_suite.json $OUT/ 2>/dev/null
tar czf $OUT/suite_nodes.tgz -C /tmp/suite . 2>/dev/null
ls -la $OUT
