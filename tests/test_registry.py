"""Registry: registration, strict names, discovery, plugin failures."""

from __future__ import annotations

import pytest
from torch import nn

from estagbench import create_model, get_model_entry, list_models, register_model
from estagbench.registry import UnknownNameError
from estagbench.testing import random_info


def test_baselines_registered_through_public_api():
    names = list_models()
    for n in ("pt-s", "pt-m", "pt-t"):
        assert n in names
        assert get_model_entry(n).trains is False
    assert get_model_entry("pt-t").module == "baselines.pointwise"


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'pt-t'.*Valid models"):
        get_model_entry("pt-x")


def test_duplicate_name_raises_with_both_modules():
    @register_model("zz-test-dup")
    def a(info, **kw):
        return nn.Identity()

    with pytest.raises(ValueError, match="registered twice"):

        @register_model("zz-test-dup")
        def b(info, **kw):
            return nn.Identity()


def test_bad_names_and_symmetry():
    with pytest.raises(ValueError, match="lowercase"):
        register_model("Bad Name")
    with pytest.raises(ValueError, match="symmetry"):
        register_model("zz-ok", symmetry="SO2")


def test_glob_and_natural_sort():
    assert list_models("pt-*") == ["pt-m", "pt-s", "pt-t"]
    assert list_models("pt-*", exclude="pt-s") == ["pt-m", "pt-t"]


def test_create_model_drops_none_and_merges_defaults():
    seen = {}

    @register_model("zz-test-defaults", width=3)
    def build(info, width=1, depth=1, **kw):
        seen.update(width=width, depth=depth)
        return nn.Identity()

    m = create_model("zz-test-defaults", random_info(), depth=None)
    assert seen == {"width": 3, "depth": 1}
    assert m.estagbench_entry.name == "zz-test-defaults"


def test_single_channel_model_refuses_multichannel():
    @register_model("zz-test-single")
    def build(info, **kw):
        return nn.Identity()

    with pytest.raises(ValueError, match="single-channel"):
        create_model("zz-test-single", random_info(num_channels=4))


@pytest.mark.parametrize("registry,flag,load", [
    ("estagbench.registry", "_PLUGINS_LOADED", "_load_builtin_and_plugins"),  # models
    ("estagbench.data.registry", "_LOADED", "_load"),  # datasets
])
def test_broken_plugin_warns(monkeypatch, registry, flag, load):
    import importlib
    import importlib.metadata as md

    reg = importlib.import_module(registry)

    class EP:
        name = "broken"
        dist = type("D", (), {"name": "broken-dist"})()

        def load(self):
            raise ImportError("no such module")

    getattr(reg, load)()  # the built-ins first, so that only the plugin is loaded again below
    monkeypatch.setattr(reg, flag, False)
    if registry.endswith("data.registry"):  # keep the built-in datasets' registrations as they are
        monkeypatch.setattr(reg, "_DATASETS", dict(reg._DATASETS))
        monkeypatch.setattr(reg, "_PATTERNS", list(reg._PATTERNS))
    monkeypatch.setattr(md, "entry_points", lambda group: [EP()] if group == reg.ENTRY_POINT_GROUP else [])
    with pytest.warns(RuntimeWarning, match="broken-dist"):
        getattr(reg, load)()


def test_core_names_do_not_import_the_baselines() -> None:
    """`estagbench run --models estag` starts without importing the baselines' libraries (e3nn)."""
    import subprocess
    import sys

    code = ("import sys; from estagbench import get_model_entry; get_model_entry('estag'); "
            "print('e3nn' in sys.modules, 'baselines.tfn' in sys.modules); "
            "get_model_entry('st-tfn'); print('baselines.tfn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"], out
