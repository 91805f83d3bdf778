# GPU run 3: where the error comes from (eager/compiled, TF32 references), then the search benchmark; results in $OUT.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
quiet() { grep -v "USDT\|\[00:\|FutureWarning\|return cls.__new__\|_warn_once\|UserWarning\|tensor = torch"; }
timeout 200 python3 benchmarks/gpu_diag_error.py 2>&1 | tee $OUT/diag.md | quiet
timeout ${SEARCH_S:-360} python3 benchmarks/bench_search.py --models ${MODELS:-encoder,resnet50} --budgets ${BUDGETS:-1e-3,1e-2} \
    --markdown $OUT/search.md ${SEARCH_ARGS:-} 2>&1 | quiet
