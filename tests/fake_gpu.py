"""A pretend GPU for CPU-only machines, so that tests catch device bugs that only a real GPU would show.

Inside `on_fake_gpu(*modules)`, the modules' parameters, and every tensor created on or moved to "cuda", are
*on the GPU*: they report `device(type='cuda', index=0)`, results computed from them are on it too, and,
as on a real GPU,

* an operation that mixes a GPU tensor with a CPU tensor (other than a 0-d scalar or an index) fails;
* `.numpy()` of a GPU tensor fails, and `.cpu()` brings a tensor back.

The numbers themselves are computed on the CPU, so results are real. The bookkeeping is a TorchFunctionMode
that marks tensors, not a device: it sees what goes through torch's Python API, which is where these bugs live.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

GPU = torch.device("cuda", 0)
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
_DEVICE = torch.Tensor.device.__get__


def _is_cuda(device) -> bool:
    return device is not None and torch.device(device).type == "cuda"


class _FakeGPU(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self._marked: dict[int, weakref.ref] = {}  # by id: tensors compare by value, not identity

    def mark(self, value):
        if isinstance(value, torch.Tensor):
            self._marked[id(value)] = weakref.ref(value)
        return value

    def is_on_gpu(self, tensor: torch.Tensor) -> bool:
        ref = self._marked.get(id(tensor))
        return ref is not None and ref() is tensor

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        gpu = [t for t in tensors if self.is_on_gpu(t)]
        if func == _DEVICE:  # a property getter: a new method-wrapper each time, so compare, not `is`
            return GPU if gpu else func(*args, **kwargs)
        if func is torch.Tensor.numpy and gpu:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                            "to host memory first.")
        if func is torch.Tensor.cpu:
            return func(*args, **kwargs).clone() if gpu else func(*args, **kwargs)
        to_gpu = _is_cuda(kwargs.get("device")) or any(
            isinstance(a, str | torch.device) and _is_cuda(a) for a in args[1:])
        if to_gpu or func is torch.Tensor.cuda:  # created on, or moved to, the GPU
            kwargs.pop("device", None)
            args = tuple(a for a in args if not (isinstance(a, str | torch.device) and _is_cuda(a)))
            out = func(*args, **kwargs) if func is not torch.Tensor.cuda else args[0]
            if func is torch.Tensor.to and out is args[0]:
                out = out.clone()  # a real move makes a new tensor; the CPU original stays on the CPU
            return tree_map(self.mark, out)
        cpu = [t for t in tensors if not self.is_on_gpu(t) and t.dim() > 0]
        if func is torch.Tensor.to and gpu and any(isinstance(a, str | torch.device) and torch.device(a).type == "cpu"
                                                   for a in (*args[1:], kwargs.get("device"))):
            return func(*args, **kwargs).clone()
        if gpu and cpu and func not in _INDEXING:
            raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                               f"cuda:0 and cpu! (in {getattr(func, '__name__', func)})")
        out = func(*args, **kwargs)
        return tree_map(self.mark, out) if gpu else out


@contextmanager
def on_fake_gpu(*modules: torch.nn.Module):
    """Pretend `modules` live on a GPU while the block runs (see the module docstring)."""
    mode = _FakeGPU()
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            mode.mark(tensor)
    with mode:
        yield mode
