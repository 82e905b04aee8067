"""Packaging: ``coreaug --version``, ``python -m coreaug``, the dependency ranges and extras of
``pyproject.toml``; and, marked ``slow``, a built wheel in a fresh virtualenv outside the checkout
and the oldest supported torch/torchvision pair in a fresh virtualenv.

The slow tests (``python -m pytest -q -m slow tests/test_packaging.py``) build and install real
packages: the wheel test needs no network (its virtualenv sees this environment's packages), the
oldest-pair test downloads torch, torchvision and the other dependencies at their lower bounds.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import coreaug
from coreaug.cli import main

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("coreaug", "spectra")
# extras that are not features of the package (benchmarks' reference implementations)
NOT_IN_DEV = {"dev", "bench"}
# an upper cap on a dependency must name the known break that justifies it: none today
DOCUMENTED_CAPS: dict[str, str] = {}
# digits-quick cut to 2 of its 12 epochs has learned something (10 classes: chance is 0.1); it is a
# smoke test of the installed package, not of accuracy (the full preset reaches about 99%)
LEARNED = 0.25


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _lower_bound(req: Requirement) -> str:
    lows = [s.version for s in req.specifier if s.operator == ">="]
    assert len(lows) == 1, f"{req}: one lower bound (>=) expected"
    return lows[0]


# ---------------------------------------------------------------------------------------------
# --version and python -m coreaug


def test_version_prints_the_package_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out, err = capsys.readouterr()
    assert out == f"coreaug {coreaug.__version__}\n" and err == ""
    assert coreaug.__version__ == importlib.metadata.version("coreaug") == _pyproject()["project"]["version"]


@pytest.mark.parametrize("argv", [
    ["--version", "extra-arg"],
    ["--version", "--version"],
    ["--version", "info"],
    ["extra-arg", "--version"],
    ["info", "--version"],
])
def test_version_with_other_arguments_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and "Traceback" not in err
    assert len(lines) == 2 and lines[0].startswith("usage: coreaug") and lines[1].startswith("coreaug: error: "), err


def test_importing_the_main_module_runs_nothing():
    module = importlib.import_module("coreaug.__main__")  # would raise SystemExit if it ran main()
    assert module.main is main


def _cli(*prefix: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COREAUG_DEBUG"}
    return subprocess.run([*prefix, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_python_m_coreaug_behaves_like_the_console_script(tmp_path):
    script = shutil.which("coreaug", path=os.path.dirname(sys.executable)) or shutil.which("coreaug")
    if script is None:
        pytest.skip("the coreaug console script is not installed (pip install -e .)")
    version = _cli(sys.executable, "-m", "coreaug", args=["--version"], cwd=tmp_path)
    assert (version.returncode, version.stdout, version.stderr) == (0, f"coreaug {coreaug.__version__}\n", "")
    # each call imports torch (seconds): the usage error is the one case run both ways
    by_module = _cli(sys.executable, "-m", "coreaug", args=["--version", "extra-arg"], cwd=tmp_path)
    by_script = _cli(script, args=["--version", "extra-arg"], cwd=tmp_path)
    assert by_module.returncode == by_script.returncode == 2, (by_module.stderr, by_script.stderr)
    assert (by_module.stdout, by_module.stderr) == (by_script.stdout, by_script.stderr)
    assert by_module.stderr.splitlines()[1] == "coreaug: error: --version takes no other arguments"


# ---------------------------------------------------------------------------------------------
# pyproject.toml: ranges users can live with, every optional feature tested in the default run


def test_dependencies_have_lower_bounds_and_no_undocumented_caps():
    for text in _pyproject()["project"]["dependencies"]:
        req = Requirement(text)
        _lower_bound(req)
        caps = [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=", "===")]
        assert not caps or req.name in DOCUMENTED_CAPS, f"{text}: an upper cap needs a documented break"


def test_dev_extra_pulls_in_every_optional_extra():
    extras = _pyproject()["project"]["optional-dependencies"]
    self_refs = [Requirement(r) for r in extras["dev"] if Requirement(r).name == "coreaug"]
    assert len(self_refs) == 1
    assert self_refs[0].extras == set(extras) - NOT_IN_DEV
    assert {"docs", "tb", "lightning", "hf", "timm", "mnist1d"} <= self_refs[0].extras


# ---------------------------------------------------------------------------------------------
# slow: the wheel in a fresh virtualenv outside the checkout


@dataclass
class Venv:
    root: Path
    python: Path
    site: Path
    cwd: Path  # an empty folder outside the checkout to run in

    def run(self, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
        """Run ``args`` (``python``/``coreaug`` resolved in the venv) in ``cwd``; assert exit 0."""
        exe = {"python": str(self.python), "coreaug": str(self.python.parent / "coreaug")}
        cmd = [exe.get(args[0], args[0]), *args[1:]]
        proc = subprocess.run(cmd, cwd=self.cwd, env=env or _clean_env(), capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would import the checkout or reuse a numba cache."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "NUMBA_CACHE_DIR", "COREAUG_DEBUG")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _copy_sources(dest: Path) -> Path:
    """The files a wheel is built from, copied out of the checkout (so no build/ lands in it)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGES:
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    return dest


def _package_files(root: Path) -> set[str]:
    """Every file of the packages under ``root`` (no caches): what the wheel must ship."""
    files = set()
    for name in PACKAGES:
        for path in (root / name).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(root).as_posix())
    return files


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Venv:
    """``pip wheel`` of the working tree, installed into a ``--system-site-packages`` virtualenv
    (torch & co. come from this environment; coreaug and spectra only from the wheel)."""
    base = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(base / "src")
    dist = base / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(src)], check=True, cwd=base, env=_clean_env(), timeout=600)
    wheels = list(dist.glob("coreaug-*.whl"))
    assert [w.name for w in wheels] == [f"coreaug-{coreaug.__version__}-py3-none-any.whl"]
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"coreaug-{coreaug.__version__}.dist-info/entry_points.txt").decode()
        metadata = zf.read(f"coreaug-{coreaug.__version__}.dist-info/METADATA").decode()
    missing = _package_files(src) - names
    assert not missing, f"files of the packages missing from the wheel (package-data?): {sorted(missing)}"
    assert not [n for n in names if n.split("/")[0] not in (*PACKAGES, f"coreaug-{coreaug.__version__}.dist-info")]
    assert "coreaug = coreaug.cli:main" in entry_points
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=300)
    cwd = base / "elsewhere"
    cwd.mkdir()
    env = Venv(venv, venv / "bin" / "python", _site_packages(venv), cwd)
    # pip from this environment, run by the venv's python, installs into the venv; --ignore-installed
    # because this environment has the editable checkout installed, which must not count
    env.run("python", "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--no-index", str(wheels[0]))
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    check = f"""
        import importlib.metadata as md
        from packaging.requirements import Requirement
        for text in {requires!r}:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({{"extra": ""}}):
                assert req.specifier.contains(md.version(req.name), prereleases=True), (text, md.version(req.name))
    """
    env.run("python", "-c", textwrap.dedent(check))  # the wheel's requirements are met here
    return env


@pytest.mark.slow
def test_wheel_imports_from_site_packages_not_the_checkout(wheel_venv):
    out = wheel_venv.run("python", "-c", "import json, coreaug, spectra; "
                         "print(json.dumps([coreaug.__file__, spectra.__file__, coreaug.__version__]))").stdout
    coreaug_file, spectra_file, version = json.loads(out)
    print(f"wheel venv: coreaug {version} from {coreaug_file}, spectra from {spectra_file}")
    for path in (coreaug_file, spectra_file):
        assert Path(path).is_relative_to(wheel_venv.site), path
        assert not Path(path).resolve().is_relative_to(REPO), path
    assert version == coreaug.__version__
    assert wheel_venv.run("coreaug", "--version").stdout == f"coreaug {coreaug.__version__}\n"
    info = wheel_venv.run("coreaug", "info").stdout
    print(f"wheel venv: coreaug info: {len(info.splitlines())} lines")
    assert "digits-quick" in info and "coreset" in info


@pytest.mark.slow
def test_wheel_runs_the_main_job(wheel_venv):
    run = wheel_venv.cwd / "runs" / "quick"
    wheel_venv.run("coreaug", "train", "--preset", "digits-quick", "--epochs", "2", "--out", str(run), "--quiet")
    results = json.loads((run / "results.json").read_text())
    print("wheel venv: digits-quick 2 epochs:", {k: results[k] for k in ("completed", "final_test_acc", "best_test_acc")})
    assert results["completed"] is True
    assert results["best_test_acc"] > LEARNED, results
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs


# CPU facility location through the compiled greedy: count its calls, compare with the tensor loop,
# report numba's cache (None = compiled without a cache) and this process's cache hits / misses
_COMPILED_SNIPPET = """
import json, torch
from coreaug.select import compiled, facility_location
calls = []
real = compiled.greedy_batch_compiled
compiled.greedy_batch_compiled = lambda *a, **k: calls.append(1) or real(*a, **k)
gen = torch.Generator().manual_seed(31)
x = torch.randn(400, 5, generator=gen, dtype=torch.float64)
y = torch.arange(400) % 3
fast = facility_location(x, y, 0.1, dtype=torch.float64)
compiled.AVAILABLE = False
slow = facility_location(x, y, 0.1, dtype=torch.float64)
stats = compiled._compiled_greedy().stats
print(json.dumps({"calls": len(calls), "file": compiled.__file__,
                  "same": torch.equal(fast.indices, slow.indices) and torch.equal(fast.weights, slow.weights),
                  "cache_path": stats.cache_path, "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""


@pytest.mark.slow
def test_wheel_compiled_selection_caches_in_site_packages(wheel_venv):
    env = _clean_env(HOME=str(wheel_venv.root / "home"))
    first = json.loads(wheel_venv.run("python", "-c", _COMPILED_SNIPPET, env=env).stdout)
    assert first["calls"] == 3 and first["same"], first
    assert Path(first["file"]).is_relative_to(wheel_venv.site)
    assert Path(first["cache_path"]) == wheel_venv.site / "coreaug" / "select" / "__pycache__"
    assert first["misses"] >= 1
    assert list(Path(first["cache_path"]).glob("compiled.*.nbi"))
    second = json.loads(wheel_venv.run("python", "-c", _COMPILED_SNIPPET, env=env).stdout)
    print("wheel venv: compiled selection, first process:", first, "second process:", second)
    assert second["same"] and second["hits"] >= 1 and second["misses"] == 0, second  # loaded, not recompiled


def _read_only(venv: Venv, args: list[str]) -> list[str]:
    """``args`` run with the whole venv (site-packages and HOME inside it) on a read-only mount.

    root writes through permission bits, so as root a private mount namespace bind-mounts the venv
    read-only; other users get ``chmod -R a-w`` (restored by the caller)."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(venv.root)], check=True)
        return args
    unshare = shutil.which("unshare")
    probe = unshare and subprocess.run([unshare, "-m", "true"], capture_output=True).returncode == 0
    if not probe:
        pytest.skip("running as root without mount namespaces: cannot make site-packages read-only")
    root = str(venv.root)
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return [unshare, "-m", "sh", "-c", script, root, *args]


@pytest.mark.slow
def test_wheel_compiled_selection_works_from_read_only_site_packages(wheel_venv):
    home = wheel_venv.root / "home-ro"
    home.mkdir(exist_ok=True)
    env = _clean_env(HOME=str(home))
    env.pop("XDG_CACHE_HOME", None)
    cmd = _read_only(wheel_venv, [str(wheel_venv.python), "-c", _COMPILED_SNIPPET])
    try:
        proc = subprocess.run(cmd, cwd=wheel_venv.cwd, env=env, capture_output=True, text=True, timeout=900)
        probe = subprocess.run(_read_only(wheel_venv, ["touch", str(wheel_venv.site / "probe")]),
                               capture_output=True, text=True)
    finally:
        if os.geteuid() != 0:
            subprocess.run(["chmod", "-R", "u+w", str(wheel_venv.root)], check=True)
    assert probe.returncode != 0, "site-packages was writable: the test did not test a read-only install"
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    print("wheel venv, read-only: compiled selection:", out, "probe write:", probe.stderr.strip())
    assert out["calls"] == 3 and out["same"], out
    assert out["cache_path"] is None, out  # no writable cache anywhere: compiled without one, per process


# ---------------------------------------------------------------------------------------------
# slow: the oldest supported torch / torchvision (and every other dependency at its lower bound)


def _oldest_pins() -> list[str]:
    """``name==lower bound`` for every dependency of ``pyproject.toml``.

    torch also excludes a ``+cpu`` local build: the index's torchvision wheels for Linux link the
    default (CUDA) build of torch, and pip ranks a local ``X+cpu`` wheel (as in this project's
    machines' find-links) above ``X``, which would pair torchvision with a torch it cannot load.
    """
    pins = []
    for text in _pyproject()["project"]["dependencies"]:
        req = Requirement(text)
        low = _lower_bound(req)
        pins.append(f"{req.name}=={low}" + (f",!={low}+cpu" if req.name == "torch" else ""))
    return pins


# import both packages, a spectra Jacobian against the autograd loop, the installed versions of ``names``
_SMOKE_SNIPPET = """
import json, sys, importlib.metadata as md, torch, coreaug, spectra
model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
J = spectra.jacobian(model, x, dtype=torch.float64)
ref = spectra.jacobian_loop(model, x, dtype=torch.float64)
print(json.dumps({"versions": {n: md.version(n) for n in sys.argv[1:]}, "file": coreaug.__file__,
                  "shape": list(J.shape), "jacobian_ok": torch.allclose(J, ref, rtol=1e-10, atol=1e-12)}))
"""


@pytest.mark.slow
def test_oldest_supported_dependencies_run_the_smoke_subset(tmp_path):
    pins = _oldest_pins()
    (tmp_path / "oldest.txt").write_text("\n".join(pins) + "\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    try:
        _smoke_oldest(tmp_path, venv, pins)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 5 GB with torch's CUDA libraries


def _smoke_oldest(tmp_path: Path, venv: Path, pins: list[str]) -> None:
    """Install the working tree with ``pins`` as constraints into ``venv``, then the smoke subset."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = Venv(venv, venv / "bin" / "python", _site_packages(venv), cwd)
    src = _copy_sources(tmp_path / "src")
    pip = env.run("python", "-m", "pip", "install", "-q", "-c", str(tmp_path / "oldest.txt"), str(src), timeout=3600)
    assert "yanked" not in pip.stderr, pip.stderr  # a lower bound users cannot get without pinning it
    names = [pin.split("==")[0] for pin in pins]
    smoke = json.loads(env.run("python", "-c", _SMOKE_SNIPPET, *names).stdout)
    print("oldest environment:", smoke["versions"])
    for pin in pins:  # exactly the lower bounds were installed (2.13 == 2.13.0; a +local label aside)
        name, version = pin.split("==")
        installed = Version(smoke["versions"][name]).public
        assert Version(installed) == Version(version.split(",")[0]), (pin, smoke["versions"])
    assert Path(smoke["file"]).is_relative_to(env.site)
    assert smoke["jacobian_ok"] and smoke["shape"] == [15, 51], smoke  # 5 examples x 3 logits, 51 parameters
    selection = json.loads(env.run("python", "-c", _COMPILED_SNIPPET, env=_clean_env(HOME=str(tmp_path / "home"))).stdout)
    assert selection["calls"] == 3 and selection["same"] and selection["cache_path"], selection
    run = cwd / "runs" / "quick"
    env.run("coreaug", "train", "--preset", "digits-quick", "--epochs", "2", "--out", str(run), "--quiet")
    results = json.loads((run / "results.json").read_text())
    print("oldest environment, digits-quick 2 epochs:", {k: results[k] for k in ("final_test_acc", "best_test_acc")})
    assert results["completed"] is True and results["best_test_acc"] > LEARNED, results
