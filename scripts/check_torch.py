"""Exit 1 unless the installed packages are the releases named (``torch==2.6.0 torchvision==0.21.0``): the floor run
must test the torch it names, not a fallback that pip picked."""

import sys
from importlib.metadata import PackageNotFoundError, version

wrong = []
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    try:
        got = version(name)
    except PackageNotFoundError:
        got = "not installed"
    if want and got.split("+")[0] != want:
        wrong.append(f"{name}: {got}, not {want}")
print("; ".join(wrong) if wrong else "installed: " + ", ".join(sys.argv[1:]))
sys.exit(1 if wrong else 0)
