# GPU run 2: search benchmark (both models, three budgets) and the multi-GPU sweep; results land in $OUT.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
quiet() { grep -v "USDT\|\[00:\|FutureWarning\|return cls.__new__\|_warn_once\|UserWarning\|tensor = torch"; }
timeout 400 python3 benchmarks/bench_search.py --models encoder,resnet50 --budgets 3e-4,1e-3,1e-2 \
    --markdown $OUT/search.md 2>&1 | quiet
timeout 150 python3 benchmarks/gpu_sweep.py --executor local --points 4 --model encoder 2>&1 | tee $OUT/sweep_encoder.txt | quiet
