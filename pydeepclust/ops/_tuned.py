"""The ``"tuned"`` backend: per call site shape, run whichever of kernel and reference is faster.

For each key (op and variant, device name, dtype, needs-grad, shape bucket) the first call
times the native kernel and the pure-torch reference (a warm-up, then the median of up to
five runs, CUDA synchronised; with gradients, forward and backward), keeps the reference
only when it is at least :data:`MARGIN` (10 %) faster, and remembers the choice: in memory,
and in a JSON file (``PYDEEPCLUST_TUNE_CACHE``, default ``<user cache dir>/pydeepclust/
tune.json``; ``PYDEEPCLUST_TUNE_CACHE=off`` keeps it in memory only). The file records the
package and torch versions; a file from other versions is ignored and rewritten.

Shape buckets are the sizes rounded up to powers of two (:func:`bucket`); which sizes per op
is the caller's choice (see the op wrappers): rows and codes for the simplex ops, batch, rows
(and columns) and width for the kernel ops, batch, rows and columns for Cayley.

No timing happens while ``torch.compile`` traces or a CUDA graph captures: then
:func:`static_choice` decides (a table from the benchmark runs; the kernel where it has no
entry), so a compiled graph does not depend on what was timed before. A reference whose
dense intermediates would not fit (``dense_bytes`` against free GPU memory; on the CPU, half
the available RAM, or :data:`CPU_MEMORY_CAP` where that is unknown) is not timed: the kernel
wins. A candidate that raises
while being timed loses (the other is chosen; such choices are not written to disk).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
from typing import Callable

import torch
from torch import Tensor

MARGIN = 0.10  # the reference must be at least this much faster to be chosen
CPU_MEMORY_CAP = 8 << 30  # bytes a CPU reference may use when /proc/meminfo is unreadable
ENV_CACHE = "PYDEEPCLUST_TUNE_CACHE"


def bucket(*sizes: int) -> tuple[int, ...]:
    """Each size rounded up to a power of two (0 stays 0): 5 -> 8, 8 -> 8, 9 -> 16."""
    return tuple([0 if s <= 0 else 1 << (int(s) - 1).bit_length() for s in sizes])


# ---------------------------------------------------------------- static table (no timing)
# From benchmarks/results/ops_cuda_h100.md (H100) and the CPU runs in benchmarks/results/
# (one thread): the cases where the reference was >= 10 % faster. Used only where timing is
# impossible (torch.compile tracing, CUDA graph capture).


def static_choice(op: str, device_type: str, needs_grad: bool, sizes: tuple) -> str:
    """``"extension"`` or ``"reference"`` for a key that was never timed.

    ``sizes`` are the raw sizes (not bucketed: under ``torch.compile`` they may be symbolic, and
    comparisons guard on them where rounding would specialise them).
    """
    if op == "cosine_simplex_assign" and sizes[1] > 16:
        # k = 50: the per-row loop over codes loses to the reference's GEMM. CPU (one thread,
        # benchmarks/results/simplex.md, tuned_cpu.md): the forward at every n (0.27-0.99x);
        # forward+backward is a tie or a win for the kernel. H100: 0.25x forward and 0.54x
        # forward+backward at n = 1e6, a tie or better below.
        if device_type == "cpu" and not needs_grad:
            return "reference"
        if device_type == "cuda" and sizes[0] > 1 << 19:
            return "reference"
    if op == "soft_memberships" and device_type == "cuda" and sizes[1] > 16:
        return "reference"  # 0.79x at n = 1e5, k = 50 on the H100 (the CPU kernel wins: 2.6x)
    if op == "rbf_row_sums" and device_type == "cuda":
        # measured with the former one-thread-per-row kernel (0.03-0.18x the dense degrees on
        # the H100); the kernel now streams cuBLAS Gram tiles, not yet timed on a GPU
        return "reference"
    if op == "cayley_retraction" and device_type == "cuda" and sizes[-1] > 16:
        # measured with the one-block elimination (0.72x at 1024x40, 0.26x at 4096x64); above
        # p = 16 the kernel now solves by batched products and linalg_solve_ex, as the
        # reference does, not yet timed on a GPU
        return "reference"
    return "extension"


# ---------------------------------------------------------------- timing


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, fn: Callable[[], object], device: torch.device,
            beat: float | None = None) -> float:
    """Seconds per call of ``fn``: a warm-up, then the median of 5 runs (3 if the warm-up took
    over 20 ms, 1 if over 0.2 s). Returns the warm-up time alone when it is over twice ``beat``
    (the other candidate's time): it has lost already."""
    del name
    start = time.perf_counter()
    fn()
    _synchronize(device)
    warm = time.perf_counter() - start
    if beat is not None and warm > 2 * beat:
        return warm
    times = []
    for _ in range(5 if warm < 0.02 else 3 if warm < 0.2 else 1):
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _timing_call(fn: Callable, args: tuple, needs_grad: bool) -> Callable[[], object]:
    """``fn(*args)`` on detached copies of the inputs; with ``needs_grad``, also the backward
    of the sum of its floating outputs (the caller's graph is never touched)."""
    def leaf(a):
        if isinstance(a, Tensor):
            return a.detach().requires_grad_(needs_grad and a.requires_grad)
        return a

    targs = tuple(leaf(a) for a in args)
    inputs = [a for a in targs if isinstance(a, Tensor) and a.requires_grad]

    def call():
        with torch.set_grad_enabled(bool(inputs)):
            out = fn(*targs)
            if inputs:
                outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,))
                        if isinstance(o, Tensor) and o.requires_grad]
                if outs:
                    torch.autograd.grad(outs, inputs, [torch.ones_like(o) for o in outs],
                                        allow_unused=True)
        return out

    return call


# ---------------------------------------------------------------- memory


def free_bytes(device: torch.device) -> int:
    """Free memory a reference may use: free GPU memory, or half the available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return CPU_MEMORY_CAP


# ---------------------------------------------------------------- the cache


def _versions() -> dict:
    from pydeepclust import __version__
    return {"pydeepclust": __version__, "torch": torch.__version__}


def cache_path() -> str | None:
    """The JSON file of measured choices, or None when disk caching is off."""
    env = os.environ.get(ENV_CACHE)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pydeepclust", "tune.json")


@functools.lru_cache(maxsize=None)
def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else what platform knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def _cuda_name(index: int) -> str:
    return torch.cuda.get_device_name(index)


def device_name(device: torch.device) -> str:
    """The device in a key: the GPU's name, or the CPU model and torch's thread count."""
    if device.type == "cuda":
        return _cuda_name(device.index if device.index is not None else torch.cuda.current_device())
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


class Tuner:
    """The choices made so far, and how they are made (``timer`` may be replaced in tests)."""

    def __init__(self, timer: Callable = measure):
        self.timer = timer
        self.choices: dict[str, str] = {}
        self._fast: dict[tuple, str] = {}  # the same choices by unformatted key (per-call path)
        self.timings = 0  # keys timed since start (tests count them)
        self._loaded_from: str | None | bool = False  # False: the disk cache not read yet

    # -- disk
    def _load(self) -> None:
        path = cache_path()
        if self._loaded_from == path:
            return
        self._loaded_from = path
        for key, choice in self._read(path).items():
            self.choices.setdefault(key, choice)

    @staticmethod
    def _read(path: str | None) -> dict:
        if path is None or not os.path.exists(path):
            return {}
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("versions") != _versions():
            return {}  # another pydeepclust or torch: measured choices no longer hold
        entries = data.get("choices", {})
        return {k: v for k, v in entries.items() if v in ("extension", "reference")}

    def _save(self, key: str, choice: str) -> None:
        path = cache_path()
        if path is None:
            return
        try:
            entries = self._read(path)
            entries[key] = choice
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump({"versions": _versions(), "choices": entries}, f, indent=0,
                          sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home: the choice stays in memory

    def clear(self) -> None:
        """Forget every choice in memory (the file stays; it is read again on next use)."""
        self.choices.clear()
        self._fast.clear()
        self._loaded_from = False

    # -- choosing
    def choose(self, op: str, native: Callable, reference: Callable, args: tuple,
               device: torch.device, dtype: torch.dtype, grad_inputs: tuple,
               sizes: tuple[int, ...], dense_bytes: int = 0) -> str:
        """``"extension"`` or ``"reference"`` for this call (timing both on a key's first call).

        The key: ``op``, ``device``, ``dtype``, whether autograd records the call on
        ``grad_inputs``, and ``sizes`` bucketed (:func:`bucket`).
        """
        dev_type = device.type
        needs_grad = torch.is_grad_enabled() and any(
            isinstance(t, Tensor) and t.requires_grad for t in grad_inputs)
        if torch.compiler.is_compiling() or (
                dev_type == "cuda" and torch.cuda.is_current_stream_capturing()):
            return static_choice(op.split(":")[0], dev_type, needs_grad, sizes)
        shape = bucket(*sizes)
        fast = (op, device, dtype, needs_grad, shape,
                torch.get_num_threads() if dev_type == "cpu" else 0)
        choice = self._fast.get(fast)
        if choice is None:
            choice = self._fast[fast] = self._choose(fast, native, reference, args, dense_bytes)
        return choice

    def _choose(self, fast: tuple, native: Callable, reference: Callable, args: tuple,
                dense_bytes: int) -> str:
        op, device, dtype, needs_grad, shape, _ = fast
        dev_type = device.type
        key = "|".join([op, device_name(device) if dev_type in ("cpu", "cuda") else dev_type,
                        str(dtype).removeprefix("torch."), "grad" if needs_grad else "nograd",
                        "x".join(map(str, shape))])
        choice = self.choices.get(key)
        if choice is not None:
            return choice
        self._load()
        choice = self.choices.get(key)
        if choice is not None:
            return choice
        persist = True
        if dense_bytes > free_bytes(device):
            choice = "extension"  # the reference would not fit: never run it
        else:
            self.timings += 1
            try:
                t_ext = self.timer("extension", _timing_call(native, args, needs_grad), device)
            except Exception:
                choice, persist = "reference", False
            else:
                try:
                    t_ref = self.timer("reference", _timing_call(reference, args, needs_grad),
                                       device, t_ext)
                except Exception:
                    choice, persist = "extension", False
                else:
                    choice = "reference" if t_ref <= (1 - MARGIN) * t_ext else "extension"
        self.choices[key] = choice
        if persist:
            self._save(key, choice)
        return choice


TUNER = Tuner()
