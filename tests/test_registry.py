"""Plugins through register_backend() and through a real entry point; selection rules."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import registry
from fastcnn.ops import BACKEND_OPS
from fastcnn.registry import BackendBase, BackendUnsupported


class ConvOnly(BackendBase):
    """A throwaway plugin: convolution forward only, delegating to naive, counting calls."""

    name = "throwaway"
    summary = "forward convolution only, for tests"
    ops = frozenset({"conv2d"})

    def __init__(self) -> None:
        self.calls = 0

    def conv2d(self, x, w, b, spec):
        self.calls += 1
        return registry.get_backend("naive").conv2d(x, w, b, spec)


@pytest.fixture
def throwaway():
    plugin = ConvOnly()
    fastcnn.register_backend(plugin)
    yield plugin
    fastcnn.unregister_backend("throwaway")


X = np.random.default_rng(1).standard_normal((1, 2, 5, 5))
W = np.random.default_rng(2).standard_normal((3, 2, 3, 3))


def test_selected_per_call_per_block_and_globally(throwaway):
    y = fastcnn.conv2d(X, W, backend="throwaway")
    assert throwaway.calls == 1
    np.testing.assert_array_equal(y, fastcnn.conv2d(X, W, backend="naive"))
    with fastcnn.use_backend("throwaway"):
        fastcnn.conv2d(X, W)
        assert throwaway.calls == 2
        fastcnn.conv2d(X, W, backend="naive")  # the call's own choice wins over the block
        assert throwaway.calls == 2
        with fastcnn.use_backend("naive"):  # the innermost block wins
            fastcnn.conv2d(X, W)
        assert throwaway.calls == 2
    fastcnn.set_default_backend("throwaway")
    try:
        fastcnn.conv2d(X, W)
        assert throwaway.calls == 3
        with fastcnn.use_backend("naive"):
            fastcnn.conv2d(X, W)
        assert throwaway.calls == 3
    finally:
        fastcnn.set_default_backend("auto")
    assert fastcnn.get_default_backend() == "auto"


def test_missing_op_is_refused_naming_the_lack_and_who_can(throwaway):
    with pytest.raises(BackendUnsupported) as info:
        fastcnn.max_pool2d(X, 2, backend="throwaway")
    message = str(info.value)
    assert "throwaway" in message and "no pool2d" in message and "naive" in message
    with pytest.raises(BackendUnsupported), fastcnn.use_backend("throwaway"):
        fastcnn.conv2d_backward(np.ones((1, 3, 3, 3)), X, W)
    assert throwaway.calls == 0  # refused, never silently run elsewhere


def test_supports_can_refuse_a_parameter():
    class NoDilation(ConvOnly):
        name = "nodilation"

        def supports(self, op, spec):
            return "it has no dilation" if spec.dilation != (1, 1) else None

    fastcnn.register_backend(NoDilation())
    try:
        fastcnn.conv2d(X, W, backend="nodilation")
        with pytest.raises(BackendUnsupported, match="no dilation"):
            fastcnn.conv2d(X, W, dilation=2, padding=2, backend="nodilation")
        # auto never picks a backend that cannot do the call
        fastcnn.conv2d(X, W, dilation=2, padding=2, backend="auto")
    finally:
        fastcnn.unregister_backend("nodilation")


def test_registration_rules(throwaway):
    with pytest.raises(ValueError, match="already registered"):
        fastcnn.register_backend(ConvOnly())
    fastcnn.register_backend(ConvOnly(), replace=True)
    with pytest.raises(TypeError, match="lacks"):
        fastcnn.register_backend(object())
    bad = ConvOnly()
    bad.ops = frozenset({"conv3d"})
    with pytest.raises(ValueError, match="unknown ops"):
        fastcnn.register_backend(bad, replace=True)
    auto = ConvOnly()
    auto.name = "auto"
    with pytest.raises(ValueError, match="other than 'auto'"):
        fastcnn.register_backend(auto)
    with pytest.raises(ValueError, match="valid names"):
        fastcnn.use_backend("nosuch").__enter__()
    with pytest.raises(ValueError, match="valid names"):
        fastcnn.set_default_backend("nosuch")


def test_list_backends_reports_available_and_unavailable(throwaway):
    rows = {info.name: info for info in fastcnn.list_backends()}
    assert rows["naive"].available and set(rows["naive"].ops) == set(BACKEND_OPS)
    assert rows["throwaway"].ops == ("conv2d",)
    assert rows["throwaway"].origin == "register_backend()"
    assert all(info.available or info.reason for info in rows.values())


PLUGIN_SOURCE = textwrap.dedent(
    """
    from fastcnn.registry import BackendBase, get_backend

    class Plugin(BackendBase):
        name = "{name}"
        summary = "a third-party plugin found through an entry point"
        ops = frozenset({{"pool2d"}})

        def pool2d(self, x, spec):
            return get_backend("naive").pool2d(x, spec) + 0.0

    backend = Plugin()
    """
)


def _install_plugin(root, dist: str, name: str, target: str, source: str | None) -> None:
    """A minimal installed distribution: a module plus a dist-info with its entry point."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fastcnn.backends]\n{name} = {target}\n")
    if source is not None:
        (root / f"{dist}.py").write_text(source)


def test_entry_point_plugin_is_discovered_lazily_and_broken_ones_are_listed(tmp_path, monkeypatch):
    _install_plugin(
        tmp_path,
        "fastcnn_ep_plugin",
        "ep_plugin",
        "fastcnn_ep_plugin:backend",
        PLUGIN_SOURCE.format(name="ep_plugin"),
    )
    _install_plugin(tmp_path, "fastcnn_ep_broken", "ep_broken", "no_such_module:backend", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.rediscover()
        assert "fastcnn_ep_plugin" not in sys.modules  # listed names, nothing imported yet
        y = fastcnn.max_pool2d(X, 2, backend="ep_plugin")
        np.testing.assert_array_equal(y, fastcnn.max_pool2d(X, 2, backend="naive"))
        with fastcnn.use_backend("ep_plugin"):
            fastcnn.max_pool2d(X, 2)
            with pytest.raises(BackendUnsupported, match="no conv2d"):
                fastcnn.conv2d(X, W)
        rows = {info.name: info for info in fastcnn.list_backends()}
        assert rows["ep_plugin"].available
        assert rows["ep_plugin"].origin == "entry point fastcnn_ep_plugin:backend"
        assert not rows["ep_broken"].available
        assert "no_such_module" in rows["ep_broken"].reason
        with pytest.raises(BackendUnsupported, match=r"unavailable.*no_such_module"):
            fastcnn.max_pool2d(X, 2, backend="ep_broken")
    finally:
        for name in ("ep_plugin", "ep_broken"):
            fastcnn.unregister_backend(name)
        monkeypatch.undo()
        registry.rediscover()


def test_use_backend_is_local_to_threads_and_tasks(throwaway):
    seen = {}

    def worker(key, name):
        with fastcnn.use_backend(name):
            barrier.wait()
            seen[key] = registry.current_backend()

    barrier = threading.Barrier(2)
    threads = [
        threading.Thread(target=worker, args=("a", "naive")),
        threading.Thread(target=worker, args=("b", "throwaway")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": "naive", "b": "throwaway"}
    assert registry.current_backend() == "auto"

    async def task(name):
        with fastcnn.use_backend(name):
            await asyncio.sleep(0.01)
            return registry.current_backend()

    async def both():
        return await asyncio.gather(task("naive"), task("throwaway"))

    assert asyncio.run(both()) == ["naive", "throwaway"]


def test_import_is_light():
    code = (
        "import sys, fastcnn; "
        "print(sorted(m for m in ('numba', 'scipy', 'fastcnn.backends.naive') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


SHADOW_CHECK = textwrap.dedent(
    """
    import numpy as np, fastcnn
    print(fastcnn.__file__)
    print(fastcnn.list_backends()[0].reason)
    try:
        fastcnn.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    except fastcnn.BackendUnsupported as exc:
        print(exc)
    """
)


def test_a_source_folder_shadowing_the_install_says_why_no_backend_loads(tmp_path):
    # The clone's root on sys.path puts the source folder `fastcnn/` (which has no
    # `backends` subpackage: setuptools maps `backends/` there on install) before the
    # installed package. A copy of the installed package without its backends plays that
    # folder here; the current directory comes first on a `-c` script's path.
    installed = Path(fastcnn.__file__).parent
    if not (installed / "backends").is_dir():
        pytest.skip("an editable install maps fastcnn.backends whatever shadows fastcnn")
    shutil.copytree(installed, tmp_path / "fastcnn", ignore=shutil.ignore_patterns("backends"))
    out = subprocess.run(
        [sys.executable, "-c", SHADOW_CHECK],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == str(tmp_path / "fastcnn" / "__init__.py")
    for line in out[1:]:
        assert "No module named 'fastcnn.backends'" in line
        assert f"imported from {tmp_path / 'fastcnn'}, a source folder" in line
        assert "pip install -e ." in line
    assert out[2].startswith("no available backend can run conv2d")


def test_load_errors_of_the_built_in_package_carry_the_hint():
    plain = registry._load_error(ModuleNotFoundError("No module named 'scipy'", name="scipy"))
    assert plain == "ModuleNotFoundError: No module named 'scipy'"
    missing = ModuleNotFoundError("No module named 'fastcnn.backends'", name="fastcnn.backends")
    assert "pip install -e ." in registry._load_error(missing)
