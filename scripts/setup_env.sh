#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment; safe to run again and again.
#
#   scripts/setup_env.sh            the package with its test, notebook and zoo extras
#   scripts/setup_env.sh --browser  the same, plus Debian's chromium for the browser test
#
# Environment: VENV (default .venv), PYTHON (default python3), EXTRAS (default test,notebook,zoo),
# TORCH_SPEC (default "torch==2.14.1 torchvision==0.29.1", space-separated pip requirements).
#
# Why that torch: the zoo test (tests/test_zoo.py) builds torchvision, timm and transformers models, and
# torchvision only loads beside the torch it was built for. PyPI's torchvision does not load beside the
# CPU torch 2.13.0 build kept on disk here; the registry's torch 2.14.1 + torchvision 0.29.1 pair does
# (about 2 minutes and 6 GB to install). The pair is installed together, first, so that nothing later
# resolves "torch>=2.6" to another build; pyproject.toml never pins torch (torch>=2.6 stays). Where the
# pair is not available, the package's own range is installed and pip picks a torchvision to match.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
EXTRAS="${EXTRAS:-test,notebook,zoo}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
want_browser=0
for arg in "$@"; do
    case "$arg" in
        --browser) want_browser=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "setup_env.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

say() { printf '[setup] %s\n' "$*"; }
has_module() { "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

# 1. The virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
pip=("$py" -m pip --disable-pip-version-check --no-input --quiet)

# 2. PyTorch first, so that nothing later resolves "torch>=2.6" to a fresh CUDA download; with the zoo
#    extra, also when torchvision is missing or does not load beside the torch that is there.
imports() { "$py" -c "import $1" >/dev/null 2>&1; }
if ! has_module torch || { [[ ",$EXTRAS," == *,zoo,* ]] && ! imports torchvision; }; then
    # PyTorch with its CUDA libraries unpacks to about 6 GB; pip's own "[Errno 28]" names no remedy.
    free_kb=$(df -Pk "$(dirname "$VENV")" | awk 'NR == 2 {print $4}')
    if [ "${free_kb:-0}" -lt $((7 * 1024 * 1024)) ]; then
        say "only $((free_kb / 1024 / 1024)) GB free where $VENV goes; installing $TORCH_SPEC needs about 7 GB."
        say "Free some space (old virtual environments, pip's cache: pip cache purge) or set VENV to a larger disk."
        exit 1
    fi
    say "installing $TORCH_SPEC"
    read -r -a torch_spec <<< "$TORCH_SPEC"
    if ! "${pip[@]}" install "${torch_spec[@]}"; then
        say "$TORCH_SPEC is not available here; falling back to the package's own torch range"
        "${pip[@]}" install "torch>=2.6"
    fi
fi

# 3. The package (editable) with its extras; skipped when nothing it depends on changed.
stamp="$VENV/.mixprec-setup"
fingerprint="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1) $EXTRAS $("$py" -c 'import sys; print(sys.version.split()[0])')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] && has_module mixprec_explorer; then
    say "$VENV is up to date"
else
    say "installing mixprec-explorer[$EXTRAS] (editable) into $VENV"
    "${pip[@]}" install -e ".[$EXTRAS]"
    echo "$fingerprint" > "$stamp"
fi

# 4. The browser test's Chromium: Debian's package, never a browser download by Playwright.
if [ "$want_browser" = 1 ]; then
    if [ -x "$CHROMIUM" ]; then
        say "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    elif command -v apt-get >/dev/null 2>&1; then
        sudo=()
        if [ "$(id -u)" != 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); fi
        fi
        if [ "$(id -u)" = 0 ] || [ "${#sudo[@]}" -gt 0 ]; then
            say "installing Debian's chromium (apt-get)"
            export DEBIAN_FRONTEND=noninteractive
            for attempt in 1 2 3; do
                if "${sudo[@]}" apt-get update -qq \
                    && "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
                then break; fi
                [ "$attempt" = 3 ] && { say "apt-get could not install chromium"; exit 1; }
                say "apt-get failed (attempt $attempt); retrying in 10 s"; sleep 10
            done
            say "chromium: $("$CHROMIUM" --version 2>/dev/null || echo missing)"
        else
            say "chromium is missing and apt-get needs root: the browser test will be skipped"
        fi
    else
        say "chromium is missing and there is no apt-get: the browser test will be skipped"
    fi
fi
