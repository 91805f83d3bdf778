"""Diagnose per-node attribution on CUDA: our layer sum vs end-to-end vs the profiler's own kernel total."""
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.backends.torch_backend import RUN_RANGE, attribute_events, flatten_inputs, run_ranged


class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4096, 4096)
        self.b = torch.nn.Linear(4096, 4096)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


ex = Explorer(M().eval(), (torch.randn(512, 4096),))
for s in (Settings(), Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)):
    c = ex.compile(s, backend="torch", device="cuda", isolate=False, progress=False)
    p = ex.profile(c, runs=20, progress=False)
    print("e2e", p.end_to_end.median_ms, "layer_sum", p.layer_sum_ms, "profiled_run", p.profiled_run_ms)
    for layer in p.layers:
        print("  node", layer.name, layer.latency_ms, layer.tactic)
    for layer in p.unattributed:
        print("  loose", layer.name, layer.latency_ms)
    module = c.handle.planned.module
    flat = flatten_inputs(tuple(x.cuda() for x in ex.example_inputs))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        for i in range(3):
            with torch.profiler.record_function(f"{RUN_RANGE}{i}"):
                run_ranged(module, flat)
            torch.cuda.synchronize()
    events = prof.events()
    dev = [e for e in events if "CUDA" in str(e.device_type)]
    print("device events", len(dev), "sum us", sum(e.time_range.elapsed_us() for e in dev) / 3)
    withk = [e for e in events if e.kernels]
    for e in withk[:12]:
        print("   cpu event with kernels:", e.name, [(k.name[:30], k.duration) for k in e.kernels], "parent", e.cpu_parent.name if e.cpu_parent else None)
    print(attribute_events(events, 3, "cuda")[:2])
