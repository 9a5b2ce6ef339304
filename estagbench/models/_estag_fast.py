"""The fused CPU kernel of single-channel ESTAG (``_estag_kernel.c``) and its autograd wrapper.

PyTorch runs ESTAG's step as about a thousand small operators; on the molecule-sized
graphs of MD17 (3-13 nodes) the per-operator cost, not arithmetic, sets the speed
(a batch of one sample takes half as long as a batch of 100).  The kernel runs the whole
forward pass of a batch in one call, and the whole parameter gradient in another,
sample by sample in the cache.  It computes exactly the model of :mod:`estag`
(tests compare the two in float64 to 1e-10 and check E(3) equivariance of both); only the
rounding differs in float32.

The C source is compiled on first use with the system C compiler (``$CC``, default
``cc``) into ``$ESTAGBENCH_KERNEL_CACHE`` (default ``~/.cache/estagbench/kernels``), one
library per source, flags, hidden width, float type and CPU; later runs load it in
milliseconds.  Without a working compiler ESTAG falls back to its PyTorch code, with a
warning (``backend="auto"``), or refuses (``backend="fused"``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["KernelUnavailable", "FusedRunner", "load_kernel", "fused_supported", "fused_forward", "kernel_cache_dir",
           "kernel_threads"]

SOURCE = Path(__file__).with_name("_estag_kernel.c")
_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC", "-pthread")
_LOCK = threading.Lock()
_LOADED: dict[tuple[int, torch.dtype], Any] = {}
_FAILED: dict[tuple[int, torch.dtype], str] = {}


class KernelUnavailable(RuntimeError):
    """The fused kernel cannot be built or does not cover this configuration."""


def kernel_cache_dir() -> Path:
    """Where compiled kernels are kept (``$ESTAGBENCH_KERNEL_CACHE`` or ``~/.cache/estagbench/kernels``)."""
    env = os.environ.get("ESTAGBENCH_KERNEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "estagbench" / "kernels"


def _cpu_signature() -> str:
    """The CPU model and instruction-set flags: ``-march=native`` code is only valid on such a CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(keep))  # one copy per distinct line


def _compile(hidden: int, dtype: torch.dtype) -> Path:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise KernelUnavailable(f"no C compiler {cc!r} on PATH (set $CC)")
    flags = [*_FLAGS, f"-DHID={hidden}"] + (["-DUSE_DOUBLE"] if dtype == torch.float64 else [])
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise KernelUnavailable(f"C compiler {cc!r} does not run: {exc}") from exc
    source = SOURCE.read_text()
    key = hashlib.sha256("\0".join([source, cc, version, *flags, _cpu_signature()]).encode()).hexdigest()[:16]
    target = kernel_cache_dir() / f"estag_h{hidden}_{'f64' if dtype == torch.float64 else 'f32'}_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.part")
    os.close(fd)
    try:  # compile exactly the text that was hashed (the file could change meanwhile), read from stdin
        proc = subprocess.run([cc, *flags, "-x", "c", "-", "-o", tmp, "-lm"], input=source, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise KernelUnavailable(f"compiling {SOURCE.name} with {cc} failed:\n{proc.stderr.strip()[-2000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def kernel_threads() -> int:
    """Threads the kernel runs a batch on: ``$ESTAGBENCH_KERNEL_THREADS``, else every CPU this
    process may use.  The numbers do not depend on it (fixed chunks, summed in order)."""
    env = os.environ.get("ESTAGBENCH_KERNEL_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"ESTAGBENCH_KERNEL_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _dims_type(dtype: torch.dtype) -> type[ctypes.Structure]:
    real = ctypes.c_double if dtype == torch.float64 else ctypes.c_float
    ptr = ctypes.c_void_p
    fields = [(n, ctypes.c_int) for n in ("B", "T", "N", "E", "F", "L", "attn", "causal", "filter")]
    fields += [("eps", real), ("row", ptr), ("col", ptr), ("z", ptr), ("inv_deg", ptr), ("dft", ptr)]
    return type(f"Dims_{real.__name__}", (ctypes.Structure,), {"_fields_": fields})


class _Kernel:
    def __init__(self, path: Path, hidden: int, dtype: torch.dtype) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.dtype = dtype
        self.Dims = _dims_type(dtype)
        if self.lib.estag_hidden() != hidden or self.lib.estag_real_size() != torch.empty(0, dtype=dtype).element_size():
            raise KernelUnavailable(f"{path} was built for another width or float type")
        vp, i, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
        self.lib.estag_forward.argtypes = [vp, vp, i, vp, vp, i]
        self.lib.estag_backward.argtypes = [vp, vp, i, vp, i64, vp, vp, vp, i]
        self.lib.estag_forward.restype = self.lib.estag_backward.restype = i
        #: whether the kernel runs with flush-to-zero / denormals-are-zero set in its own threads
        #: (x86: yes, whatever the caller's environment, which it restores; elsewhere: untouched)
        self.flushes_denormals = bool(self.lib.estag_flushes_denormals())


def load_kernel(hidden: int, dtype: torch.dtype) -> _Kernel:
    """The compiled kernel for width ``hidden`` and ``dtype`` (float32/float64); raises
    :class:`KernelUnavailable` (with the compiler's message) when it cannot be built."""
    if dtype not in (torch.float32, torch.float64):
        raise KernelUnavailable(f"the fused kernel handles float32 and float64, not {dtype}")
    key = (hidden, dtype)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if key in _FAILED:
            raise KernelUnavailable(_FAILED[key])
        try:
            kernel = _Kernel(_compile(hidden, dtype), hidden, dtype)
        except (KernelUnavailable, OSError) as exc:
            _FAILED[key] = str(exc)
            raise KernelUnavailable(str(exc)) from exc
        _LOADED[key] = kernel
        return kernel


def fused_supported(model: Any) -> str | None:
    """``None`` if the fused kernel covers ``model``'s configuration, else the reason it does not."""
    if model.hidden & (model.hidden - 1) or not 1 <= model.hidden <= 256:
        return f"hidden width {model.hidden} (the kernel needs a power of two up to 256)"
    if model.channels != 1:
        return "multi-channel nodes"
    if model.act_name != "silu":
        return f"activation {model.act_name!r} (the kernel has SiLU)"
    if model.edft is None:
        return "ESTAG without EDFT"
    if model.edft.amplitude != "paper":
        return "the authors' amplitude"
    if model.pooling != "equivariant":
        return "softmax pooling"
    return None


def param_order(model: Any) -> list[Tensor | None]:
    """Parameters in the order the kernel reads them (see the enums in ``_estag_kernel.c``)."""
    f = model.edft.filter
    out: list[Tensor | None] = [model.embed.weight, model.embed.bias, model.time_embed.weight,
                                f.weight if f is not None else None, f.bias if f is not None else None, model.pool]
    for i, esm in enumerate(model.esm):
        out += [esm.edge_in.weight, esm.edge_in.bias, esm.edge_out.weight, esm.edge_out.bias,
                esm.node_in.weight, esm.node_in.bias, esm.node_out.weight, esm.node_out.bias,
                esm.coord_in.weight, esm.coord_in.bias, esm.coord_out.weight]
        if model.etm is not None:
            etm = model.etm[i]
            for mlp in (etm.q, etm.k, etm.v):
                out += [mlp[0].weight, mlp[0].bias, mlp[2].weight, mlp[2].bias]
            out += [etm.coord[0].weight, etm.coord[0].bias, etm.coord[2].weight]
    return out


def unused_params(model: Any) -> set[int]:
    """Positions in :func:`param_order` of parameters the output does not depend on: without
    ETM the last ESM's node update is skipped.  Their gradient is None, as in PyTorch."""
    if model.etm is not None:
        return set()
    base = 6 + (len(model.esm) - 1) * 11
    return {base + 4, base + 5, base + 6, base + 7}


class _Graph:
    """The kernel's copy of one graph and its node features, with strong references to the
    tensors it was made from (so an identity test cannot be fooled by a reused address)."""

    def __init__(self, model: Any, dtype: torch.dtype, h: Tensor, edge_index: Tensor, T: int, N: int) -> None:
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
        F = model.embed.in_features
        if h.dim() != 2 or tuple(h.shape) != (N, F):
            raise ValueError(f"node features must have shape ({N}, {F}) for this model, got {tuple(h.shape)}")
        self.source = (h, h._version, edge_index, edge_index._version, T, N)
        self.row = edge_index[0].to(torch.int64).contiguous()
        self.col = edge_index[1].to(torch.int64).contiguous()
        if self.row.numel() and (int(torch.minimum(self.row.min(), self.col.min())) < 0
                                 or int(torch.maximum(self.row.max(), self.col.max())) >= N):
            raise ValueError(f"edge_index has node ids outside [0, {N})")
        self.inv_deg = 1.0 / torch.bincount(self.row, minlength=N).to(dtype).clamp(min=1.0)
        self.z = h.detach().to(dtype).contiguous()
        self.dft = model.edft.dft.to(dtype).contiguous()
        self.fields = dict(T=T, N=N, E=int(self.row.numel()), F=F, L=len(model.esm),
                           attn=int(model.etm is not None), causal=int(model.attention == "causal"),
                           filter=int(model.edft.filter is not None), eps=float(model.edft.eps),
                           row=self.row.data_ptr(), col=self.col.data_ptr(), z=self.z.data_ptr(),
                           inv_deg=self.inv_deg.data_ptr(), dft=self.dft.data_ptr())

    def matches(self, h: Tensor, edge_index: Tensor, T: int, N: int) -> bool:
        sh, sv, se, ev, st, sn = self.source
        return sh is h and se is edge_index and sv == h._version and ev == edge_index._version and (st, sn) == (T, N)


class FusedRunner:
    """What the kernel needs from one model, prepared once: the parameters in kernel order,
    their pointers and gradient offsets, and the last graph.  Held by the model per dtype;
    :meth:`valid` notices a parameter that was replaced or moved (then a new one is made)."""

    def __init__(self, kernel: _Kernel, model: Any) -> None:
        self.kernel, self.model = kernel, model
        dummy = torch.zeros(1, dtype=kernel.dtype)
        order = param_order(model)
        self.params = [p if p is not None else dummy for p in order]
        if any(p.dtype != kernel.dtype or not p.is_contiguous() or p.device.type != "cpu" for p in self.params):
            raise KernelUnavailable(f"the parameters must be contiguous {kernel.dtype} CPU tensors")
        # where each parameter lives, to check cheaply that it is still the model's
        owners = {id(p): (mod, name) for mod in model.modules() for name, p in mod._parameters.items()}
        self.slots = [owners[id(p)] if p is not None else None for p in order]
        self.ptrs = (ctypes.c_void_p * len(self.params))(*[p.data_ptr() for p in self.params])
        self.unused = unused_params(model)
        self.sizes = [p.numel() for p in self.params]
        offsets = [0]
        for n in self.sizes:
            offsets.append(offsets[-1] + n)
        self.offsets = offsets
        self.goff = (ctypes.c_int64 * len(self.sizes))(*offsets[:-1])
        self._graph: _Graph | None = None

    def valid(self) -> bool:
        """Whether every parameter is still the model's (not replaced, e.g. by ``load_state_dict(assign=True)``
        or ``torch.func.functional_call``) and still lives where the pointers say."""
        return all(slot is None or (slot[0]._parameters.get(slot[1]) is p and p.data_ptr() == q)
                   for slot, p, q in zip(self.slots, self.params, self.ptrs, strict=True))

    def graph(self, x: Tensor, h: Tensor, edge_index: Tensor) -> _Graph:
        T, N = x.shape[1], x.shape[2]
        g = self._graph
        if g is None or not g.matches(h, edge_index, T, N):
            g = self._graph = _Graph(self.model, self.kernel.dtype, h, edge_index, T, N)
        return g

    def dims(self, graph: _Graph, B: int) -> Any:
        """A fresh ``Dims`` for one call (never shared between calls: ctypes releases the GIL)."""
        return self.kernel.Dims(B=B, **graph.fields)


def _check(rc: int, what: str) -> None:
    if rc == -1:
        raise MemoryError(f"ESTAG fused kernel: out of memory in {what}")
    if rc == -2:
        raise ValueError(f"ESTAG fused kernel: invalid sizes in {what}")
    if rc == -3:
        raise ValueError(f"ESTAG fused kernel: an edge index is out of range in {what}")
    if rc != 0:
        raise RuntimeError(f"ESTAG fused kernel: {what} failed with code {rc}")


class _FusedESTAG(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, runner: FusedRunner, x: Tensor, h: Tensor, edge_index: Tensor, *params: Tensor) -> Tensor:  # type: ignore[override]
        graph = runner.graph(x, h, edge_index)
        dims = runner.dims(graph, x.shape[0])
        out = x.new_empty((x.shape[0], x.shape[2], 3))
        threads = kernel_threads()
        _check(runner.kernel.lib.estag_forward(ctypes.byref(dims), runner.ptrs, len(params), x.data_ptr(),
                                               out.data_ptr(), threads), "the forward pass")
        ctx.runner, ctx.graph, ctx.threads = runner, graph, threads
        ctx.versions = [p._version for p in params]
        ctx.save_for_backward(x, h, edge_index)  # autograd then refuses in-place changes to them
        return out

    @staticmethod
    @once_differentiable  # the kernel's gradient is not itself differentiable: double backward raises
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, _, _ = ctx.saved_tensors
        runner: FusedRunner = ctx.runner
        if [p._version for p in runner.params] != ctx.versions:
            raise RuntimeError("ESTAG fused kernel: a parameter was modified in place between the forward and "
                               "the backward pass")
        dims = runner.dims(ctx.graph, x.shape[0])
        grad = x.new_zeros(runner.offsets[-1])
        gout = gout.to(x.dtype).contiguous()
        _check(runner.kernel.lib.estag_backward(ctypes.byref(dims), runner.ptrs, len(runner.sizes), runner.goff,
                                                runner.offsets[-1], x.data_ptr(), gout.data_ptr(), grad.data_ptr(),
                                                ctx.threads), "the backward pass")
        parts = grad.split(runner.sizes)
        grads = [None if i in runner.unused else g.view(p.shape)
                 for i, (g, p) in enumerate(zip(parts, runner.params, strict=True))]
        return (None, None, None, None, *grads)


def fused_forward(runner: FusedRunner, x: Tensor, h: Tensor, edge_index: Tensor) -> Tensor:
    """ESTAG's prediction ``(B, N, 3)`` for positions ``x`` ``(B, T, N, 3)`` with the fused kernel,
    on :func:`kernel_threads` threads."""
    return _FusedESTAG.apply(runner, x.contiguous(), h, edge_index, *runner.params)


def warn_fallback(reason: str) -> None:
    warnings.warn(f"ESTAG: the fused CPU kernel is unavailable ({reason}); using the PyTorch implementation "
                  "(same model, slower)", RuntimeWarning, stacklevel=3)
