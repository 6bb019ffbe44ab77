"""A policy compiled by ``opa build -t wasm``, evaluated in this process with wasmtime.

The module speaks OPA's Wasm ABI (version 1.2 and later: the one-call ``opa_eval``
fast path): the bundle's data is parsed into the module's memory once, then each
evaluation writes the input JSON behind it, calls ``opa_eval`` with the heap reset
to just after the input, and reads the result set back as JSON. The heap is reset
on every call, so memory does not grow with the number of evaluations.

Host built-ins: OPA's Wasm compiler leaves some built-ins to the host. Only
``sprintf`` is provided (:mod:`authorizer.authz.gofmt`, byte for byte OPA's for the
formats the gateway's messages use); a policy that needs another host built-in is
refused when loaded (:class:`WasmPolicyError`), so it can only run on the OPA sidecar.

Why not the ``opa-wasm`` package: it is built on wasmer-python (unmaintained since
2022) and copies the module's whole memory to read each result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections.abc import Callable
from typing import Any

import wasmtime

from authorizer.authz.gofmt import UnsupportedFormat, sprintf

_wasmtime_ffi: Any
try:  # wasmtime-py's ctypes layer: a call without its per-call type introspection (half the cost)
    from wasmtime import _ffi as _wasmtime_ffi
    from wasmtime._func import enter_wasm as _enter_wasm
except ImportError:  # pragma: no cover - another wasmtime-py layout: the public call is used
    _wasmtime_ffi = None

#: OPA Wasm ABI major version this adapter speaks, and the lowest minor version (opa_eval fast path).
ABI_MAJOR, ABI_MIN_MINOR = 1, 2
#: Upper bound on the module's linear memory, in 64 KiB pages (256 MiB): a runaway policy traps.
MAX_MEMORY_PAGES = 4096

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.memchr.restype = ctypes.c_void_p
_libc.memchr.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)

HostBuiltin = Callable[..., Any]
#: Built-ins this host provides, by OPA name: JSON arguments in, JSON result out.
HOST_BUILTINS: dict[str, HostBuiltin] = {"sprintf": sprintf}


def _unknown_builtin(*_args: Any) -> Any:
    raise WasmPolicyError("the policy called a built-in it did not declare")


class WasmPolicyError(Exception):
    """The module cannot be used (wrong ABI, a host built-in not provided, bad data), or an
    evaluation failed (a trap, ``opa_abort``, a built-in error)."""


class I32Call:
    """Calls an exported function whose parameters and result are all ``i32`` (OPA's ABI).

    wasmtime-py's public ``Func.__call__`` reads the function's type and converts every
    argument on each call; this builds the argument array directly (same C entry point,
    ``wasmtime_func_call``, same trap handling), and falls back to the public call when the
    installed wasmtime-py does not have the layout it relies on (pinned: wasmtime 51).

    Args:
        store: the store the function lives in.
        func: the function.
    """

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func) -> None:
        self._store, self._func = store, func
        ty = func.type(store)
        self._arity = len(ty.params)
        i32 = wasmtime.ValType.i32()
        self._fast = (_wasmtime_ffi is not None and all(p == i32 for p in ty.params)
                      and [r == i32 for r in ty.results] == [True] and hasattr(func, "_func")
                      and hasattr(store, "_context"))
        if self._fast:
            assert _wasmtime_ffi is not None
            self._params = (_wasmtime_ffi.wasmtime_val_t * max(1, self._arity))()
            for i in range(self._arity):
                self._params[i].kind = _wasmtime_ffi.WASMTIME_I32
            self._results = (_wasmtime_ffi.wasmtime_val_t * 1)()

    def __call__(self, *args: int) -> int:
        """Call with ``args`` (i32 values); the i32 result.

        Raises:
            wasmtime.WasmtimeError, wasmtime.Trap: the call failed or trapped.
        """
        if not self._fast:
            return int(self._func(self._store, *args))
        assert _wasmtime_ffi is not None
        if len(args) != self._arity:
            raise wasmtime.WasmtimeError(f"expected {self._arity} arguments, got {len(args)}")
        params = self._params
        for i, value in enumerate(args):
            params[i].of.i32 = value
        with _enter_wasm(self._store) as trap:
            error = _wasmtime_ffi.wasmtime_func_call(self._store._context(), ctypes.byref(self._func._func), params,
                                                     self._arity, self._results, 1, trap)
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
        return int(self._results[0].of.i32)


class WasmPolicy:
    """One instance of a compiled policy with its data.

    Not thread-safe: call it from one thread (the event loop's). An evaluation that fails
    leaves the instance usable (the heap is reset by the next call).

    Args:
        wasm: the ``policy.wasm`` bytes.
        data: the bundle's data document (``data.json`` plus anything the policy reads under
            ``data``, e.g. ``system.bundles``).
        engine: a shared wasmtime engine (compiling is the slow part; one engine may serve
            several instances).

    Raises:
        WasmPolicyError: the module is not OPA's ABI 1.2+, needs a host built-in this adapter
            does not provide, or the data cannot be loaded.
    """

    def __init__(self, wasm: bytes, data: dict[str, Any], engine: wasmtime.Engine | None = None) -> None:
        self._engine = engine or wasmtime.Engine()
        try:
            module = wasmtime.Module(self._engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise WasmPolicyError(f"policy.wasm does not compile: {exc}") from None
        self._store = wasmtime.Store(self._engine)
        store = self._store
        memory_import = next((i for i in module.imports if i.name == "memory"), None)
        pages = memory_import.type.limits.min if memory_import is not None and isinstance(
            memory_import.type, wasmtime.MemoryType) else 2
        self._memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(pages, MAX_MEMORY_PAGES)))
        self._builtins: dict[int, tuple[str, HostBuiltin]] = {}
        self._host_error: BaseException | None = None
        imports: list[Any] = []
        i32 = wasmtime.ValType.i32()
        for imp in module.imports:
            name = imp.name or ""
            if name == "memory":
                imports.append(self._memory)
            elif name == "opa_abort":
                imports.append(wasmtime.Func(store, wasmtime.FuncType([i32], []), self._abort))
            elif name == "opa_println":
                imports.append(wasmtime.Func(store, wasmtime.FuncType([i32], []), lambda _addr: None))
            elif name.startswith("opa_builtin") and name[-1:].isdigit():
                arity = int(name.removeprefix("opa_builtin"))
                imports.append(wasmtime.Func(store, wasmtime.FuncType([i32] * (arity + 2), [i32]), self._builtin))
            else:
                raise WasmPolicyError(f"policy.wasm imports {imp.module}.{name}, which OPA's ABI does not define")
        try:
            instance = wasmtime.Instance(store, module, imports)
        except wasmtime.WasmtimeError as exc:
            raise WasmPolicyError(f"policy.wasm does not instantiate: {exc}") from None
        exports = instance.exports(store)
        self._exports = exports
        major = self._global("opa_wasm_abi_version")
        minor = self._global("opa_wasm_abi_minor_version")
        if major != ABI_MAJOR or minor < ABI_MIN_MINOR:
            raise WasmPolicyError(f"policy.wasm speaks OPA Wasm ABI {major}.{minor}; "
                                  f"{ABI_MAJOR}.{ABI_MIN_MINOR}+ is needed")
        self._eval = I32Call(store, self._func("opa_eval"))
        self._malloc = I32Call(store, self._func("opa_malloc"))
        self._json_parse = I32Call(store, self._func("opa_json_parse"))
        self._json_dump = I32Call(store, self._func("opa_json_dump"))
        self.entrypoints: dict[str, int] = self._value_json(I32Call(store, self._func("entrypoints"))())
        needed: dict[str, int] = self._value_json(I32Call(store, self._func("builtins"))())
        missing = sorted(name for name in needed if name not in HOST_BUILTINS)
        if missing:
            raise WasmPolicyError(f"the policy needs built-in(s) {', '.join(missing)}, which in-process evaluation "
                                  "does not provide; evaluate it with the OPA sidecar (opa.evaluation: sidecar)")
        self._builtins = {bid: (name, HOST_BUILTINS[name]) for name, bid in needed.items()}
        self._data_addr = self._put_json(json.dumps(data, ensure_ascii=False).encode("utf-8"))
        self._heap_base = I32Call(store, self._func("opa_heap_ptr_get"))()

    def _func(self, name: str) -> wasmtime.Func:
        func = self._exports[name]
        if not isinstance(func, wasmtime.Func):
            raise WasmPolicyError(f"policy.wasm does not export the function {name}")
        return func

    def _global(self, name: str) -> int:
        glob = self._exports[name]
        if not isinstance(glob, wasmtime.Global):
            raise WasmPolicyError(f"policy.wasm does not export the global {name}")
        return int(glob.value(self._store))

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        """Evaluate ``entrypoint`` on ``input_json``.

        Args:
            entrypoint: an entrypoint the policy was built with, e.g. ``wms/authz/decision``.
            input_json: the input document as UTF-8 JSON.

        Returns:
            The result set as UTF-8 JSON: ``[{"result": ...}]``, or ``[]`` when undefined.

        Raises:
            WasmPolicyError: unknown entrypoint, a trap, ``opa_abort`` or a built-in that failed.
        """
        try:
            entry = self.entrypoints[entrypoint]
        except KeyError:
            raise WasmPolicyError(f"the policy has no entrypoint {entrypoint}") from None
        store, base = self._store, self._heap_base
        end = base + len(input_json)
        if end + 65536 > self._memory.data_len(store):  # room for the input and the first allocations
            self._memory.grow(store, (end + 65536 - self._memory.data_len(store)) // 65536 + 1)
        self._memory.write(store, input_json, base)
        self._host_error = None
        try:
            result = self._eval(0, entry, self._data_addr, base, len(input_json), end, 0)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            cause = self._host_error or exc
            raise WasmPolicyError(f"policy evaluation failed: {cause}") from None
        return self._c_string(int(result))

    # -- memory ------------------------------------------------------------------------
    def _c_string(self, addr: int) -> bytes:
        """The NUL-terminated string at ``addr`` in the module's memory."""
        size = self._memory.data_len(self._store)
        if not 0 < addr < size:
            raise WasmPolicyError(f"policy returned an address outside its memory ({addr})")
        base = ctypes.addressof(self._memory.data_ptr(self._store).contents)
        nul = _libc.memchr(base + addr, 0, size - addr)
        if nul is None:
            raise WasmPolicyError("policy returned an unterminated string")
        return ctypes.string_at(base + addr, nul - base - addr)

    def _put_json(self, raw: bytes) -> int:
        """Parse ``raw`` JSON into a value in the module's heap; its address."""
        addr = self._malloc(len(raw))
        self._memory.write(self._store, raw, addr)
        value = self._json_parse(addr, len(raw))
        if value == 0:
            raise WasmPolicyError("the policy module could not parse a JSON document")
        return value

    def _value_json(self, value_addr: int) -> Any:
        return json.loads(self._c_string(self._json_dump(value_addr)))

    # -- host functions ----------------------------------------------------------------
    def _abort(self, addr: int) -> None:
        message = self._c_string(addr).decode("utf-8", "replace")
        self._host_error = WasmPolicyError(f"opa_abort: {message}")
        raise self._host_error

    def _builtin(self, builtin_id: int, _ctx: int, *args: int) -> int:
        name, function = self._builtins.get(builtin_id, ("?", _unknown_builtin))
        try:
            value = function(*(self._value_json(a) for a in args))
            return self._put_json(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        except (UnsupportedFormat, WasmPolicyError, TypeError, ValueError) as exc:
            self._host_error = WasmPolicyError(f"built-in {name}: {exc}")
            raise self._host_error from None
