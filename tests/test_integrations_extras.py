"""A missing optional extra is one line naming it, for every integration module."""

from __future__ import annotations

import importlib
import sys

import pytest

from coreaug.errors import CoreaugError


@pytest.mark.parametrize("package, module, extra", [
    ("lightning", "coreaug.integrations.lightning", "lightning"),
    ("transformers", "coreaug.integrations.hf", "hf"),
])
def test_missing_extra_is_one_line_naming_it(monkeypatch, package, module, extra):
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(CoreaugError) as err:
        importlib.import_module(module)
    assert f'pip install -e ".[{extra}]"' in str(err.value) and "\n" not in str(err.value)
