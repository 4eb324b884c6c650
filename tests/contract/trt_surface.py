"""The real TensorRT 11.x API surface, and a checker of the TensorRT names a source file uses.

Two real sources, nothing hand-copied:
- the lean runtime module (``tensorrt_lean_bindings``), imported and introspected: class members,
  properties (and whether they are settable), enum members, and every overload's parameters from
  the pybind11 signature at the top of each ``__doc__``;
- the full bindings' extension module (``tensorrt_bindings/tensorrt.so``, which cannot be imported
  without libnvinfer): its identifier strings, and its docstrings, tied to (class, method) by the
  ``tensorrt::<Class>Doc::<method>`` symbols in its symbol table. A docstring's ``:arg`` lines give
  that method's parameters. Where the symbol is gone (inlined), ``DOC_ANCHORS`` names the
  docstring by its first line; an anchor that is not in the .so is itself an error.

What the full-side check cannot see: argument types, defaults, return types, and property
setters. Those parts of the builder path are unverified until it runs on a real TensorRT.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

MODULE = "<module>"
# How the adapter names the variables that hold TensorRT objects (see its module docstring).
RECEIVERS = {
    "trt": MODULE,
    "builder": "Builder",
    "network": "INetworkDefinition",
    "trt_layer": "ILayer",
    "tensor": "ITensor",
    "config": "IBuilderConfig",
    "parser": "OnnxParser",
    "error": "ParserError",
    "profile": "IOptimizationProfile",
    "runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "inspector": "EngineInspector",
    "cache": "ITimingCache",
    "plan": "IHostMemory",
    "logger": "ILogger",
}
# Python class name -> the ``<Name>Doc`` namespace its docstrings live in, where they differ.
DOC_NAMESPACE = {"EngineInspector": "RuntimeInspector"}
# (class, method) -> first line of its docstring, for methods whose Doc symbol was inlined away.
DOC_ANCHORS = {
    ("OnnxParser", "__init__"): ":arg network: The network definition to which the parser will write.",
    ("OnnxParser", "parse_from_file"): "Parse an ONNX model from file into a TensorRT network.",
    ("OnnxParser", "get_error"): "Get an error that occurred during prior calls to :func:`parse`",
}


@dataclass(frozen=True)
class Use:
    """One TensorRT name used by a source: ``kind`` is get, set, call or override."""

    cls: str  # MODULE for module-level names
    member: str
    kind: str
    nargs: int = 0  # positional arguments (without self) for call/override
    keywords: tuple[str, ...] = ()
    line: int = 0

    def where(self) -> str:
        owner = "trt" if self.cls == MODULE else self.cls
        return f"line {self.line}: {owner}.{self.member}" if self.line else f"{owner}.{self.member}"


@dataclass(frozen=True)
class Params:
    """One overload: parameter names in order (without self) and how many are required."""

    names: tuple[str, ...]
    required: int

    def accepts(self, nargs: int, keywords: tuple[str, ...]) -> bool:
        if nargs > len(self.names):
            return False
        given = set(self.names[:nargs]) | set(keywords)
        return set(keywords) <= set(self.names[nargs:]) and all(
            n in given for n in self.names[: self.required]
        )


_SIGNATURE = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) ->", re.M)


def _split_params(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def pybind_overloads(obj: Any, name: str) -> list[Params]:
    """Every overload's parameters from a pybind11 ``__doc__`` (self dropped)."""
    overloads = []
    for match in _SIGNATURE.finditer(getattr(obj, "__doc__", "") or ""):
        if match.group(1) != name or match.group(2) == "*args, **kwargs":
            continue
        params = [p for p in _split_params(match.group(2)) if not p.startswith("self")]
        names = tuple(p.split(":", 1)[0].split("=", 1)[0].strip() for p in params)
        overloads.append(Params(names, sum(1 for p in params if "=" not in p)))
    return overloads


class FullBindings:
    """What the full ``tensorrt.so`` shows without being imported."""

    def __init__(self, so_path: Path) -> None:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.relocation import RelocationSection

        raw = so_path.read_bytes()
        self.strings = [s.decode("utf-8", "replace") for s in raw.split(b"\x00") if s]
        # The linker stores a string that is the tail of another only once ("num_errors" inside
        # "get_num_errors"), so every identifier tail counts as present.
        self.identifiers = {
            s[i:] for s in self.strings if s.isidentifier() for i in range(len(s) - 2) if s[i:].isidentifier()
        }
        self.docs: dict[tuple[str, str], str] = {}
        with so_path.open("rb") as handle:
            elf = ELFFile(handle)
            pointers = {}
            for sym in elf.get_section_by_name(".symtab").iter_symbols():
                match = re.match(r"_ZN8tensorrt\d+(\w+?)DocL\d+(\w+?)E", sym.name)
                if match and sym["st_size"] == 8:  # a ``const char*`` docstring constant
                    pointers[sym["st_value"]] = (match.group(1), match.group(2))
            targets = {}
            for section in elf.iter_sections():
                if isinstance(section, RelocationSection):
                    for rel in section.iter_relocations():
                        if rel["r_offset"] in pointers:
                            targets[pointers[rel["r_offset"]]] = rel["r_addend"]
            for key, address in targets.items():
                text = self._c_string(elf, address)
                if text is not None:
                    self.docs[key] = text
        self.identifiers |= {cls for cls, _ in self.docs} | {member for _, member in self.docs}

    @staticmethod
    def _c_string(elf: Any, address: int) -> str | None:
        for section in elf.iter_sections():
            start = section["sh_addr"]
            if start <= address < start + section["sh_size"] and section["sh_type"] != "SHT_NOBITS":
                data = section.data()
                offset = address - start
                return data[offset : data.index(b"\x00", offset)].decode("utf-8", "replace")
        return None

    def doc(self, cls: str, member: str) -> str | None:
        namespace = DOC_NAMESPACE.get(cls, cls)
        key = (namespace, "init" if member == "__init__" else member)
        if key in self.docs:
            return self.docs[key]
        anchor = DOC_ANCHORS.get((cls, member))
        if anchor is None:
            return None
        hits = [s for s in self.strings if s.strip().startswith(anchor)]
        if len(hits) != 1:
            raise LookupError(f"DOC_ANCHORS[{cls}.{member}] matches {len(hits)} docstrings in tensorrt.so, not 1")
        return hits[0]

    def params(self, cls: str, member: str) -> Params | None:
        text = self.doc(cls, member)
        if text is None:
            return None
        names = tuple(re.findall(r":arg (\w+):", text))
        return Params(names, len(names))


@dataclass
class Surface:
    lean: ModuleType
    full: FullBindings | None
    version: str = field(init=False)

    def __post_init__(self) -> None:
        self.version = self.lean.__version__

    def check(self, use: Use) -> str | None:
        """None when ``use`` matches the real API, else what is wrong."""
        if use.cls == MODULE:
            return self._check_module(use)
        lean_cls = getattr(self.lean, use.cls, None)
        if lean_cls is not None and hasattr(lean_cls, use.member):
            return self._check_lean(use, lean_cls)
        return self._check_full(use, lean_only_class=lean_cls is not None)

    def _check_module(self, use: Use) -> str | None:
        obj = getattr(self.lean, use.member, None)
        if obj is None:
            if self.full is None or use.member not in self.full.identifiers:
                return f"{use.where()}: TensorRT {self.version} has no module-level name {use.member!r}"
            if use.kind == "call":
                params = self.full.params(use.member, "__init__")
                if params is None:
                    return f"{use.where()}: no constructor signature for {use.member} in tensorrt.so"
                if not params.accepts(use.nargs, use.keywords):
                    return f"{use.where()}: {use.member}({', '.join(params.names)}) called with {use.nargs} positional arguments"
            return None
        if use.kind != "call":
            return None
        if inspect.isclass(obj):
            overloads = pybind_overloads(obj.__init__, "__init__")
        else:
            try:
                sig = inspect.signature(obj)
            except (TypeError, ValueError):
                overloads = pybind_overloads(obj, use.member)
            else:
                ps = list(sig.parameters.values())
                overloads = [Params(tuple(p.name for p in ps), sum(p.default is p.empty for p in ps))]
        return self._match(use, overloads)

    def _check_lean(self, use: Use, cls: Any) -> str | None:
        attr = inspect.getattr_static(cls, use.member)
        if isinstance(attr, property):
            if use.kind in ("call", "override"):
                return f"{use.where()}: is a property in TensorRT {self.version}, not a method"
            if use.kind == "set" and attr.fset is None:
                return f"{use.where()}: is a read-only property in TensorRT {self.version}"
            return None
        if use.kind == "set":
            return f"{use.where()}: is not a settable property in TensorRT {self.version}"
        if use.kind in ("call", "override") and callable(getattr(cls, use.member)):
            overloads = pybind_overloads(getattr(cls, use.member), use.member)
            if overloads:
                return self._match(use, overloads)
        return None  # enum members, plain attributes

    def _check_full(self, use: Use, *, lean_only_class: bool) -> str | None:
        if self.full is None:
            return f"{use.where()}: not in the lean runtime; the full bindings are needed to check it"
        if use.cls not in self.full.identifiers and not lean_only_class:
            return f"{use.where()}: TensorRT {self.version} has no class {use.cls!r}"
        if use.member != "__init__" and use.member not in self.full.identifiers:
            return f"{use.where()}: TensorRT {self.version} has no member {use.member!r}"
        if use.kind in ("call", "override"):
            params = self.full.params(use.cls, use.member)
            if params is None:
                return f"{use.where()}: tensorrt.so has no docstring tied to {use.cls}.{use.member}; add a DOC_ANCHORS entry"
            return self._match(use, [params])
        return None

    @staticmethod
    def _match(use: Use, overloads: list[Params]) -> str | None:
        if not overloads or any(p.accepts(use.nargs, use.keywords) for p in overloads):
            return None
        shown = " | ".join(f"({', '.join(p.names)})" for p in overloads)
        kw = f" and keywords {list(use.keywords)}" if use.keywords else ""
        return f"{use.where()}: takes {shown}, used with {use.nargs} positional arguments{kw}"


def load_surface() -> Surface:
    """The installed 11.x lean module plus the full bindings' .so (None where not installed)."""
    lean = importlib.import_module("tensorrt_lean_bindings")
    spec = importlib.util.find_spec("tensorrt_bindings")
    so = None
    if spec is not None and spec.submodule_search_locations:
        candidates = sorted(Path(next(iter(spec.submodule_search_locations))).glob("tensorrt*.so"))
        so = candidates[0] if candidates else None
    return Surface(lean, FullBindings(so) if so else None)


# -- what a source file uses -------------------------------------------------------------------


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _root(node: ast.AST) -> str | None:
    """The object a chain of calls, subscripts and attributes starts from (``parser`` for
    ``parser.get_error(i).desc``)."""
    while isinstance(node, (ast.Call, ast.Subscript, ast.Attribute)):
        if isinstance(node, ast.Attribute) and _dotted(node.value) is not None:
            return _dotted(node.value)
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _receiver(dotted: str) -> str:
    """``self._engine`` -> ``engine`` when that names a TensorRT object."""
    if dotted.startswith("self._") and dotted[6:] in RECEIVERS:
        return dotted[6:]
    return dotted


def _ours(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def uses_in_source(source: str, non_trt: set[str]) -> tuple[list[Use], list[str]]:
    """Every TensorRT name ``source`` uses, and the receivers it could not classify.

    A receiver is the dotted name left of an attribute access. It must be in ``RECEIVERS`` (then
    the access is checked) or in ``non_trt`` (then it is not); anything else is reported, so a
    new variable holding a TensorRT object cannot slip past the contract.
    """
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    uses: list[Use] = []
    unknown: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            uses.extend(_overrides(node))
        if not isinstance(node, ast.Attribute) or _ours(node.attr):
            continue
        dotted = _dotted(node.value)
        if dotted is None:
            root = _root(node.value)
            if root is not None and _receiver(root) in RECEIVERS:
                unknown.append(f"line {node.lineno}: .{node.attr} on the result of a call on {root}")
            continue
        receiver = _receiver(dotted)
        head, _, rest = receiver.partition(".")
        if receiver in RECEIVERS:
            cls, member = RECEIVERS[receiver], node.attr
            if cls == MODULE and member.startswith("__"):  # __version__, __name__
                continue
        elif head == "trt" and "." not in rest:  # trt.BuilderFlag.TF32, trt.ILogger.__init__
            cls, member = rest, node.attr
        elif receiver.split(".")[0] in non_trt or receiver in non_trt:
            continue
        else:
            unknown.append(f"line {node.lineno}: {receiver}.{node.attr}")
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Call) and parent.func is node:
            nargs = len(parent.args)
            if head == "trt" and rest and member.startswith("__"):  # unbound: trt.X.__init__(self)
                nargs -= 1
            keywords = tuple(k.arg for k in parent.keywords if k.arg)
            uses.append(Use(cls, member, "call", nargs, keywords, node.lineno))
        elif isinstance(node.ctx, ast.Store):
            uses.append(Use(cls, member, "set", line=node.lineno))
        else:
            uses.append(Use(cls, member, "get", line=node.lineno))
    return uses, unknown


def _overrides(node: ast.ClassDef) -> list[Use]:
    """Methods a subclass of ``trt.X`` defines: each must override a real member of X."""
    bases = [_dotted(b) for b in node.bases]
    found = []
    for base in bases:
        if base and base.startswith("trt.") and base.count(".") == 1:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    nargs = len(item.args.args) - 1
                    found.append(Use(base[4:], item.name, "override", nargs, (), item.lineno))
    return found


def check_source(source: str, surface: Surface, non_trt: set[str]) -> list[str]:
    """Problems with the TensorRT names and arities ``source`` uses; empty when all match."""
    uses, unknown = uses_in_source(source, non_trt)
    problems = [f"{u}: unclassified receiver (name it after its TensorRT class or list it as non-TensorRT)" for u in unknown]
    problems += [p for p in (surface.check(u) for u in uses) if p]
    return problems


def uses_in_double(double: ModuleType) -> list[Use]:
    """Every public member the test double defines, as the uses the adapter could make of it."""
    uses = [Use(MODULE, "__version__", "get")]
    for name, obj in vars(double).items():
        if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == double.__name__:
            uses.append(Use(MODULE, name, "call", len(inspect.signature(obj).parameters)))
    for cls_name, cls in vars(double).items():
        if not inspect.isclass(cls) or cls_name.startswith("_") or cls.__module__ != double.__name__:
            continue
        for member, attr in vars(cls).items():
            # Constructors are checked where the adapter calls them (trt.Builder(logger), ...).
            if _ours(member) or member.startswith("__"):
                continue
            if isinstance(attr, property):
                uses.append(Use(cls_name, member, "set" if attr.fset else "get"))
            elif inspect.isfunction(attr):
                params = list(inspect.signature(attr).parameters.values())[1:]
                positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
                required = sum(p.default is p.empty for p in positional)
                for nargs in sorted({required, len(positional)}):
                    uses.append(Use(cls_name, member, "call", nargs))
            else:
                uses.append(Use(cls_name, member, "get"))
    return uses
