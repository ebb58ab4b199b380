# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Static audit of the module sources embedded in NVIDIA persistence pickles (``shared/spec/sid_edm.md`` 3.4).

The source is parsed with :mod:`ast`; it is never compiled or executed. See :func:`audit_module_source`.
"""
import ast
from typing import List, Optional

__all__ = ['audit_module_source']

_DANGEROUS_NAMES = {'exec', 'eval', 'compile', '__import__', '__builtins__', 'open', 'breakpoint', 'input',
                    'globals', 'locals', 'vars', 'setattr', 'delattr', 'getattr', 'os', 'sys', 'subprocess', 'shutil',
                    'socket', 'importlib', 'builtins', 'pickle', 'marshal', 'ctypes', 'pathlib', 'urllib', 'requests'}
# Calls that genuine sources make at import time (decorators, warning filters, constant arithmetic).
_SAFE_IMPORT_TIME_CALLS = {'warnings.filterwarnings', 'warnings.simplefilter', 'torch.no_grad', 'torch.enable_grad',
                           'torch.jit.script', 'torch.device', 'functools.lru_cache', 'functools.wraps',
                           'dataclasses.dataclass', 'dataclasses.field', 'np.sqrt', 'numpy.sqrt', 'math.sqrt',
                           'np.float32', 'dict', 'list', 'tuple', 'float', 'int', 'persistence.persistent_class',
                           'misc.profiled_function'}
# The modules the names of those calls must refer to (an import binding them to anything else is refused).
# ('misc' and 'persistence' are the reference's own helper modules, imported from torch_utils or a copy of it.)
_EXPECTED_BINDINGS = {'np': 'numpy', 'numpy': 'numpy', 'torch': 'torch', 'warnings': 'warnings',
                      'functools': 'functools', 'dataclasses': 'dataclasses', 'math': 'math',
                      'persistence': '.persistence', 'misc': '.misc'}
_BUILTIN_CALLS = {'dict', 'list', 'tuple', 'float', 'int'}


def _rebinding_issues(tree: ast.Module):
    """Module-level statements that bind a name used by the safe-call list to something else."""
    for stmt in tree.body:
        bound = []
        if isinstance(stmt, ast.Import):
            bound = [(a.asname or a.name.split('.')[0], a.name if a.asname else a.name.split('.')[0])
                     for a in stmt.names]
        elif isinstance(stmt, ast.ImportFrom):
            bound = [(a.asname or a.name, f'{stmt.module}.{a.name}') for a in stmt.names]
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound = [(stmt.name, None)]
        else:
            bound = [(n.id, None) for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        for name, target in bound:
            expected = _EXPECTED_BINDINGS.get(name)
            ok = expected is None or target == expected or (expected[0] == '.' and str(target).endswith(expected))
            if name in _BUILTIN_CALLS or not ok:
                yield stmt.lineno, f'rebinds {name!r}' + (f' to {target}' if target else '')


def _dotted(node) -> Optional[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return '.'.join([node.id] + parts[::-1])
    return None


def _is_main_guard(test) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == '__name__'
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == '__main__')


def _import_time_nodes(tree: ast.Module):
    """Expression nodes evaluated when the module is imported (module and class bodies, decorators, defaults,
    base classes), excluding function bodies."""
    stack = list(tree.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from stmt.decorator_list
            yield from stmt.args.defaults
            yield from (d for d in stmt.args.kw_defaults if d is not None)
            continue
        if isinstance(stmt, ast.ClassDef):
            yield from stmt.decorator_list
            yield from stmt.bases
            yield from (k.value for k in stmt.keywords)
            stack.extend(stmt.body)
            continue
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):  # persistence never runs a module as __main__
            stack.extend(stmt.orelse)
            continue
        yield stmt


def audit_module_source(src: str) -> List[str]:
    """Problems with an embedded module source, found by parsing it (never executing it).

    Flags calls that would run at import time (module and class bodies, decorators, default values, base classes;
    not function bodies) unless they are on a short list of harmless ones (decorators, ``warnings.filterwarnings``,
    ``torch.device``, constant arithmetic), and import-time references to names that reach the interpreter, the
    file system or the network. An empty list means the source only defines things, as the sources embedded by
    EDM, EDM2 and SiD (both branches) do (checked against their repositories).
    """
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        return [f'line {e.lineno}: the embedded source does not parse ({e.msg})']
    issues = set(_rebinding_issues(tree))
    for node in _import_time_nodes(tree):
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                name = _dotted(sub.func)
                if name not in _SAFE_IMPORT_TIME_CALLS:
                    issues.add((sub.lineno, f'{name or "an expression"}(...) would run on import'))
            elif isinstance(sub, ast.Name) and sub.id in _DANGEROUS_NAMES:
                issues.add((sub.lineno, f'uses {sub.id} at import time'))
    return [f'line {line}: {msg}' for line, msg in sorted(issues)]
