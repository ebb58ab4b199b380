# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Turn the build errors a researcher hits most (unknown ``type=``, unknown constructor key, missing file) into
one clear sentence that names the registry/class, the offending key and the closest valid names."""
import difflib
import inspect
import re
from typing import List, Optional

from mmengine.registry import Registry


class ConfigError(ValueError):
    """A config or command-line choice that cannot work (reported by ``tools/train.py`` as one sentence)."""


_REGISTRY_MISS = re.compile(r"(?P<name>\S+) is not in the (?:(?P<scope>[\w.]+)::)?(?P<registry>[\w ]+?) registry")
_BAD_KWARG = re.compile(r"(?P<cls>\w+)\.__init__\(\) got an unexpected keyword argument '(?P<key>\w+)'")


def _all_registries() -> List[Registry]:
    import kdm.registry as reg
    return [getattr(reg, n) for n in reg.__all__]


def registered_names(registry_name: str) -> List[str]:
    """Every name registered in the kdm registry ``registry_name`` or in its MMEngine parent."""
    names = set()
    for registry in _all_registries():
        if registry.name != registry_name:
            continue
        registry.import_from_location()
        names.update(registry.module_dict)
        if registry.parent is not None:
            names.update(registry.parent.module_dict)
    return sorted(names)


def _find_class(name: str):
    """The registered class called ``name`` in any kdm registry (or its MMEngine parent), else None."""
    for registry in _all_registries():
        for reg in (registry, registry.parent):
            if reg is not None and name in reg.module_dict:
                return reg.module_dict[name]
    return None


def explain(exc: BaseException) -> Optional[str]:
    """A one-paragraph explanation of a known build error, or None if ``exc`` is not one of them."""
    text = str(exc.args[0]) if exc.args else str(exc)
    m = _REGISTRY_MISS.search(text)
    if isinstance(exc, KeyError) and m:
        valid = registered_names(m['registry'])
        close = difflib.get_close_matches(m['name'], valid, n=5, cutoff=0.4)
        hint = f'; closest registered names: {close}' if close else f'; registered names: {valid[:40]}'
        return f"unknown type '{m['name']}' in the {m['scope'] or 'kdm'}::{m['registry']} registry{hint}"
    m = _BAD_KWARG.search(text)
    if isinstance(exc, TypeError) and m:
        cls = _find_class(m['cls'])
        params = [] if cls is None else [
            p for p in inspect.signature(cls.__init__).parameters if p not in ('self', 'args', 'kwargs')]
        close = difflib.get_close_matches(m['key'], params, n=3, cutoff=0.5)
        did = f' (did you mean {close}?)' if close else ''
        where = f' ({cls.__module__})' if cls is not None else ''
        return f"unknown config key '{m['key']}' for {m['cls']}{where}{did}; {m['cls']} accepts: {params}"
    if isinstance(exc, FileNotFoundError):
        return str(exc) if exc.filename is None else f'{exc.strerror or "file not found"}: {exc.filename}'
    if isinstance(exc, KeyError) and text.startswith('optim_wrapper.'):
        return text
    if type(exc).__name__ in ('CheckpointError', 'ConfigError', 'NonFiniteLossError'):
        return text
    return None
