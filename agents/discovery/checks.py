"""The static check of a candidate module, before any of its code runs.

:func:`check_candidate` parses the source and rejects, with the line and a sentence:

* a syntax error;
* an import outside :data:`~agents.discovery.contract.ALLOWED_MODULES` (plain
  ``import`` only for top-level standard modules; package modules via ``from ... import``);
* a forbidden name (``getattr``, ``eval``, ``open``, ``globals``, ...), any dunder name,
  and a ``global`` statement (state shared between episodes);
* a forbidden attribute: anything starting with ``_``, the episode's hidden data
  (``question``, ``order``, ...), ``str.format``, and any attribute of an imported
  module that is itself a module outside the whitelist (``typing.sys``);
* a module used as a value (``m = typing``): a module may only be the base of an
  attribute access, so such escapes cannot hide behind an alias;
* ``except:`` or ``except BaseException``, which would swallow the sandbox's step limit;
* a module that breaks the contract: no docstring, not exactly one frozen-dataclass
  subclass of ``Controller`` with a ``name``, ``run`` and ``schedule`` (or ``grid``).

The check is a fast first line that gives the LLM a clear diagnosis; it is never the line
relied on. What a candidate can reach is decided by the operating system and by what
its process holds (:mod:`autotts_gym.isolation`): code that slips past this check still
runs in a container with no data but what its episodes revealed.
"""

from __future__ import annotations

import ast
import importlib
import re
import types
from dataclasses import dataclass

from agents.discovery.contract import ALLOWED_MODULES, FORBIDDEN_ATTRIBUTES, FORBIDDEN_NAMES, is_allowed_import

MIN_DOCSTRING_WORDS = 4
# Special methods a candidate may define; others (__del__, __getattr__, __reduce__, ...)
# would run at times the sandbox does not control or change how attributes resolve.
ALLOWED_DUNDER_METHODS = frozenset(
    {
        "__post_init__",
        "__eq__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__hash__",
        "__repr__",
        "__str__",
        "__len__",
        "__iter__",
        "__contains__",
    }
)


class CandidateRejected(ValueError):
    """A candidate that fails a check. ``kind`` names the failure class."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class CandidateInfo:
    """What the static check learned about an accepted candidate.

    Attributes:
        class_name: the controller class.
        name: its ``name`` attribute.
        docstring: the module docstring (its mechanisms).
        family: ``"schedule"`` (beta family) or ``"grid"`` (free parameters).
    """

    class_name: str
    name: str
    docstring: str
    family: str


def extract_code(response: str) -> str | None:
    """The candidate module in a proposer's reply.

    The last fenced block tagged ``python`` (or untagged) that defines a class; else the
    longest fenced block; else the whole reply if it parses as Python; else None.
    """
    blocks = re.findall(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", response, flags=re.S)
    code_blocks = [body for tag, body in blocks if tag.lower() in ("", "python", "py", "python3")]
    with_class = [b for b in code_blocks if re.search(r"^class\s", b, flags=re.M)]
    if with_class:
        return with_class[-1].strip() + "\n"
    if code_blocks:
        return max(code_blocks, key=len).strip() + "\n"
    text = response.strip()
    if not text:
        return None
    try:
        ast.parse(text)
    except SyntaxError:
        return None
    return text + "\n"


def check_candidate(source: str, filename: str = "candidate.py", free_params: bool = False) -> CandidateInfo:
    """Statically check a candidate module; raise :class:`CandidateRejected` if it is not
    acceptable.

    Args:
        source: the module's source.
        filename: named in the messages.
        free_params: the candidate declares ``grid()`` instead of ``schedule(beta)``.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as err:
        raise CandidateRejected("syntax-error", f"{filename}, line {err.lineno}: syntax error: {err.msg}") from None
    checker = _Checker(filename)
    checker.visit(tree)
    if checker.problems:
        kind, _ = checker.problems[0]
        shown = [msg for _, msg in checker.problems[:5]]
        more = len(checker.problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        raise CandidateRejected(kind, text)
    return _check_contract(tree, filename, checker, free_params)


class _Checker(ast.NodeVisitor):
    """Collects every violation of the import, name and attribute rules."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[tuple[str, str]] = []
        self.module_names: dict[str, types.ModuleType] = {}  # local name -> module it binds
        self.controller_names: set[str] = {"Controller"}
        self.dataclass_names: set[str] = set()
        self._attribute_bases: set[int] = set()

    def problem(self, kind: str, node: ast.AST, message: str) -> None:
        entry = (kind, f"{self.filename}, line {getattr(node, 'lineno', '?')}: {message}")
        if entry not in self.problems:  # a chain a.b.c is visited once per link
            self.problems.append(entry)

    # ------------------------------------------------------------- imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            reason = is_allowed_import(alias.name)
            top = alias.name.split(".")[0]
            if reason is None and top not in ALLOWED_MODULES:
                reason = f"'import {alias.name}' is not allowed; write 'from {alias.name} import ...'"
            if reason:
                self.problem("forbidden-import", node, reason)
                continue
            bound = alias.asname or top
            self.module_names[bound] = importlib.import_module(alias.name if alias.asname else top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.problem("forbidden-import", node, "relative imports are not allowed")
            return
        names = [a.name for a in node.names]
        reason = is_allowed_import(module, names)
        if reason:
            self.problem("forbidden-import", node, reason)
            return
        if module == "__future__":
            return
        mod = importlib.import_module(module)
        for alias in node.names:
            bound = alias.asname or alias.name
            if alias.name.startswith("_"):
                self.problem("forbidden-attribute", node, f"importing the private name {alias.name!r} is not allowed")
                continue
            value = getattr(mod, alias.name, None)
            if value is None:
                self.problem("forbidden-import", node, f"{module} has no name {alias.name!r}")
            elif isinstance(value, types.ModuleType):
                if value.__name__ not in ALLOWED_MODULES:
                    self.problem(
                        "forbidden-import",
                        node,
                        f"{module}.{alias.name} is the module {value.__name__!r}, which is not allowed",
                    )
                else:
                    self.module_names[bound] = value
            elif module == "agents.base" and alias.name == "Controller":
                self.controller_names.add(bound)
            elif module == "dataclasses" and alias.name == "dataclass":
                self.dataclass_names.add(bound)
            if alias.name in FORBIDDEN_NAMES:
                self.problem("forbidden-name", node, f"the name {alias.name!r} is not allowed")

    # ---------------------------------------------------- names, attributes
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self.problem("forbidden-name", node, f"the name {node.id!r} is not allowed")
        elif node.id.startswith("__") and node.id.endswith("__"):
            self.problem("forbidden-name", node, f"the name {node.id!r} is not allowed")
        elif node.id in self.module_names and id(node) not in self._attribute_bases:
            self.problem(
                "forbidden-name", node, f"the module {node.id!r} may only be used as {node.id}.<name>, not as a value"
            )

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("_"):
            hint = " (for a key function, use d.get instead of d.__getitem__)" if attr == "__getitem__" else ""
            self.problem(
                "forbidden-attribute",
                node,
                f"the attribute {attr!r} is not allowed: names starting with '_' are private{hint}",
            )
        elif attr in FORBIDDEN_ATTRIBUTES:
            self.problem("forbidden-attribute", node, f"the attribute {attr!r} is not allowed")
        chain = _attribute_chain(node)
        if chain is not None and chain[0] in self.module_names:
            self._check_module_chain(node, chain)
        if isinstance(node.value, ast.Name):
            self._attribute_bases.add(id(node.value))
        self.generic_visit(node)

    def _check_module_chain(self, node: ast.Attribute, chain: list[str]) -> None:
        # A module's attribute may be a module only if that one is allowed too.
        obj: object = self.module_names[chain[0]]
        for attr in chain[1:]:
            if not isinstance(obj, types.ModuleType) or attr.startswith("_"):
                return
            value = getattr(obj, attr, None)
            if value is None:
                self.problem("forbidden-attribute", node, f"{obj.__name__} has no attribute {attr!r}")
                return
            if isinstance(value, types.ModuleType) and value.__name__ not in ALLOWED_MODULES:
                self.problem(
                    "forbidden-attribute",
                    node,
                    f"{obj.__name__}.{attr} is the module {value.__name__!r}, which is not allowed",
                )
                return
            obj = value

    # ---------------------------------------------------------- statements
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = node.name
        if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDER_METHODS:
            allowed = ", ".join(sorted(ALLOWED_DUNDER_METHODS))
            self.problem("forbidden-name", node, f"defining {name} is not allowed (special methods allowed: {allowed})")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Global(self, node: ast.Global) -> None:
        self.problem(
            "forbidden-name", node, "'global' is not allowed: a controller keeps its state in local variables of run()"
        )

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        caught = node.type
        names = [caught] if not isinstance(caught, ast.Tuple) else list(caught.elts)
        if caught is None or any(
            isinstance(n, ast.Name) and n.id in ("BaseException", "SystemExit", "KeyboardInterrupt") for n in names
        ):
            self.problem(
                "forbidden-name",
                node,
                "'except:' and 'except BaseException' are not allowed (catch Exception or narrower)",
            )
        self.generic_visit(node)


def _attribute_chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None if the base is not a plain name."""
    parts = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return [current.id, *reversed(parts)]


def _check_contract(tree: ast.Module, filename: str, checker: _Checker, free_params: bool) -> CandidateInfo:
    docstring = ast.get_docstring(tree) or ""
    if len(docstring.split()) < MIN_DOCSTRING_WORDS:
        raise CandidateRejected("contract", f"{filename}: the module needs a docstring that describes its mechanisms")
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(_base_name(b) in checker.controller_names for b in node.bases)
    ]
    if len(classes) != 1:
        found = ", ".join(c.name for c in classes) or "none"
        raise CandidateRejected(
            "contract",
            f"{filename}: the module must define exactly one subclass of agents.base.Controller (found: {found})",
        )
    cls = classes[0]
    where = f"{filename}, line {cls.lineno}: class {cls.name}"
    if not any(_is_frozen_dataclass(d, checker) for d in cls.decorator_list):
        raise CandidateRejected("contract", f"{where} must be declared @dataclass(frozen=True)")
    name = _class_name_attribute(cls)
    if name is None:
        raise CandidateRejected("contract", f'{where} must set a class attribute name = "..." (a non-empty string)')
    methods = {f.name: f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    run = methods.get("run")
    if run is None or len(run.args.args) < 2:
        raise CandidateRejected("contract", f"{where} must define run(self, episode)")
    family = "grid" if free_params else "schedule"
    signature = "grid() -> list[dict]" if free_params else "schedule(beta) -> dict"
    fn = methods.get(family)
    if fn is None or not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list):
        raise CandidateRejected("contract", f"{where} must define @staticmethod {signature}")
    return CandidateInfo(class_name=cls.name, name=name, docstring=docstring, family=family)


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_frozen_dataclass(node: ast.expr, checker: _Checker) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    is_dataclass = (isinstance(func, ast.Name) and func.id in checker.dataclass_names) or (
        isinstance(func, ast.Attribute)
        and func.attr == "dataclass"
        and isinstance(func.value, ast.Name)
        and getattr(checker.module_names.get(func.value.id), "__name__", None) == "dataclasses"
    )
    frozen = any(
        k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords
    )
    return is_dataclass and frozen


def _class_name_attribute(cls: ast.ClassDef) -> str | None:
    for stmt in cls.body:
        target = value = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and target.id == "name":
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.strip():
                return value.value
            return None
    return None
