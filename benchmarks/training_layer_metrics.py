"""How clear is the training/command layer?  Static and dynamic metrics of one source tree.

For a checkout of the repository given by ``--root`` (default: the repository this script lives in)
it measures, stdlib only:

1. **Function length** (static, ``ast``): every function and method (nested ones included, each
   counted on its own *and* inside its enclosing function) in ``coreaug/train/**.py`` and
   ``coreaug/commands/**.py`` ("train+commands"), and separately in all of ``coreaug/**.py``. Length
   = ``end_lineno - lineno + 1`` of the ``def`` node (decorators not counted; docstrings, comments and
   blank lines inside the body are). Reported: the 10 longest (qualified name, file, lines), the
   number of functions and how many are longer than 50 lines (one screen), plus the median length.

2. **The path of one ``coreaug train`` run** (dynamic): a child process runs::

       python <wrapper> train --preset digits-quick --model mlp --epochs 1 --fraction 0.1 \\
           --threads 1 --device cpu --quiet --out <tmp>

   with ``PYTHONPATH=<root>`` first (the child prints and checks ``coreaug.__file__``, so the
   checkout's ``coreaug`` runs, not the installed one) and ``OMP_NUM_THREADS=1``. The wrapper (written
   to a temporary folder) imports ``coreaug.cli``, installs a ``sys.setprofile`` hook and calls
   ``coreaug.cli.main([...])``. Only Python ``call``/``return`` events whose code object's file lies
   inside ``<root>/coreaug/`` are kept; a frame's *module* is its file relative to ``<root>``
   (``coreaug/train/loop.py``). Calls through code outside ``coreaug`` (torch's ``Module.__call__``
   calling a coreaug ``forward``, a list comprehension in numpy, ...) are attributed to the nearest
   enclosing coreaug frame: the caller of a coreaug call is the coreaug frame below it. Generator and
   coroutine resumptions are calls (that is what ``sys.setprofile`` reports). Module-level code run
   by an import (a ``<module>`` frame) and everything under it is *not* counted: importing is not
   part of the run's control flow. Main thread only. Definitions:

   * ``modules_visited``: distinct coreaug modules with at least one counted call;
   * ``calls``: counted calls (coreaug frames entered, resumptions included);
   * ``transitions``: calls whose callee module differs from the caller's module (the first call,
     made by the wrapper, has no caller and is not a transition);
   * ``module stack``: the modules of the coreaug frames on the stack, bottom to top, with consecutive
     repeats merged (``cli, commands/train, train/loop, train/epoch_data``);
   * ``reentries`` ("returns to a module already left"): transitions into a module M that is already
     on the module stack (necessarily below a different module, the caller's): an A -> B -> A
     pattern, a cycle in the call path between modules. ``reentry_pairs``: distinct (M, caller module)
     pairs of those; ``reentries_direct``: those whose callee was called directly by the caller frame
     (no frame outside coreaug in between: not a torch hook or ``Module.__call__`` calling back, nor a
     function behind a decorator defined outside coreaug such as ``@torch.no_grad()``);
   * ``edges``: distinct (caller module -> callee module) pairs among the transitions;
     ``two_way_pairs`` ("upward cycles"): unordered module pairs {A, B} with both A -> B and B -> A
     among the edges; ``largest_cycle_component``: modules in the largest strongly connected
     component of the edge graph (every module in it can reach every other one and come back);
     ``two_way_pairs_direct`` and ``largest_cycle_component_direct``: the same on the edges that
     include a direct call;
   * ``max_module_depth``: the deepest module stack seen.
   * **config path** (``run.config_path``), in two variants: ``train_config`` keeps the counted calls whose
     *arguments* (``co_varnames[:co_argcount + co_kwonlyargcount]``, plus the values in ``*args`` and
     ``**kwargs``, read from ``frame.f_locals`` on the ``call`` event) include an object of a type named
     ``TrainConfig``; ``config_or_group`` also keeps those whose arguments include one of its group
     dataclasses (``DataConfig``, ``ModelConfig``, ``SelectionConfig``, ``PruningConfig``,
     ``AugmentationConfig``, ``OptimisationConfig``, ``ExecutionConfig``, ``DiagnosticsConfig``). Not kept:
     the config classes' own methods and properties (``hash``, ``to_dict``, the flat-field properties:
     every function or property accessor found in the ``__dict__`` of such a class or its bases;
     module-level functions of ``train/config.py`` that take the config, ``validate``, ``_check_*``, are
     kept), and generator/coroutine resumptions (only a generator's first start, which is when it
     receives its arguments). Of the kept calls, in call order, take each one's module:
     ``config_modules`` = distinct modules, ``config_calls`` = kept calls, ``config_returns`` = kept calls
     whose module differs from the previous kept call's module and already appeared earlier in the
     sequence (the config came back to a module it had left). ``config_sequence`` lists the modules with
     consecutive repeats merged (first 80), ``config_return_calls`` the calls behind the returns.

   The JSON's ``run.detail`` names the functions behind each re-entry and each two-way pair.

3. **Whole config handed around** (static): functions in ``coreaug/train`` and ``coreaug/commands``
   with a parameter named ``cfg`` (positional, keyword-only or positional-only), listed; also counted
   without ``coreaug/train/config.py`` itself (the config's own checks naturally take it whole).

Usage::

    python benchmarks/training_layer_metrics.py [--root PATH] [--json OUT.json] [--no-run]
    python benchmarks/training_layer_metrics.py --compare BEFORE.json AFTER.json [MORE.json ...] [--names a,b,...]

The run takes a few seconds (under a minute on 2 busy cores); ``--timeout`` bounds it (default 300 s).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent
SCREEN = 50
TOP = 10
TRAIN_ARGS = ["train", "--preset", "digits-quick", "--model", "mlp", "--epochs", "1", "--fraction", "0.1",
              "--threads", "1", "--device", "cpu", "--quiet"]
LAYER_DIRS = ("coreaug/train", "coreaug/commands")


# ----------------------------------------------------------------------------------------- static
def _functions(path: Path, rel: str) -> list[dict]:
    """Every function/method of one file: qualified name (``Class.method``, ``f.<locals>.g``), file, lines, params."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[dict] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{child.name}"
                a = child.args
                params = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                out.append({"name": qual, "file": rel, "lineno": child.lineno,
                            "lines": child.end_lineno - child.lineno + 1, "params": params})
                visit(child, f"{qual}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _scan(root: Path, subdirs: tuple[str, ...]) -> list[dict]:
    funcs: list[dict] = []
    for sub in subdirs:
        for path in sorted((root / sub).rglob("*.py")):
            funcs.extend(_functions(path, path.relative_to(root).as_posix()))
    return funcs


def _number(x: float) -> float | int:
    return int(x) if x == int(x) else x


def _length_summary(funcs: list[dict]) -> dict:
    ranked = sorted(funcs, key=lambda f: (-f["lines"], f["file"], f["lineno"]))
    return {
        "functions": len(funcs),
        "over_screen": sum(f["lines"] > SCREEN for f in funcs),
        "median_lines": _number(statistics.median(f["lines"] for f in funcs)) if funcs else 0,
        "top": [{k: f[k] for k in ("name", "file", "lineno", "lines")} for f in ranked[:TOP]],
    }


def static_metrics(root: Path) -> dict:
    layer = _scan(root, LAYER_DIRS)
    package = _scan(root, ("coreaug",))
    lay, pkg = _length_summary(layer), _length_summary(package)
    files = sorted({p.relative_to(root).as_posix() for d in LAYER_DIRS for p in (root / d).rglob("*.py")})
    layer_loc = sum(len((root / f).read_text(encoding="utf-8").splitlines()) for f in files)
    cfg = sorted((f for f in layer if "cfg" in f["params"]), key=lambda f: (f["file"], f["lineno"]))
    return {
        "layer_files": len(files),
        "layer_source_lines": layer_loc,
        "train_commands": lay,
        "package": pkg,
        "cfg_functions": {"count": len(cfg),
                          "outside_config_py": sum(f["file"] != "coreaug/train/config.py" for f in cfg),
                          "functions": [f"{f['file']}:{f['name']}" for f in cfg]},
    }


# ---------------------------------------------------------------------------------------- dynamic
WRAPPER = r'''
import json, os, sys
ROOT, RESULT = sys.argv[1], sys.argv[2]
ARGV = sys.argv[3:]
PKG = os.path.join(os.path.realpath(ROOT), "coreaug") + os.sep
import coreaug, coreaug.cli
print("child coreaug.__file__ =", coreaug.__file__, file=sys.stderr)
if not os.path.realpath(coreaug.__file__).startswith(PKG):
    sys.exit(f"wrong coreaug imported: {coreaug.__file__} (expected under {PKG})")

modcache = {}          # code object -> module name (str) | None (outside coreaug) | "<module>" (import)
stack = []             # (frame id, module) of the coreaug frames entered, bottom to top
runs = []              # module stack: [module, frames] with consecutive repeats merged
on_stack = {}          # module -> number of entries of it in `runs`
calls = {}             # module -> counted calls
edges = {}             # (caller module, callee module) -> transitions
reentry = {}           # (re-entered module, caller module) -> count
fedges = {}            # (caller code, callee code) -> transitions; reentered: set of those keys
reentered = set()
direct_edges = {}      # (caller module, callee module) -> transitions made by a direct call (no frame outside coreaug between)
import_depth = [0]     # > 0 while a coreaug <module> frame (an import) runs
# config path: calls whose arguments include the run configuration (TrainConfig) or one of its groups
GROUP_TYPES = {"DataConfig", "ModelConfig", "SelectionConfig", "PruningConfig", "AugmentationConfig",
               "OptimisationConfig", "ExecutionConfig", "DiagnosticsConfig"}
CONFIG_TYPES = GROUP_TYPES | {"TrainConfig"}
GEN_FLAGS = 0x20 | 0x80 | 0x200          # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
argnames = {}          # code -> its argument names (*args/**kwargs included)
fresh_offsets = {}     # generator code -> offsets of its `RESUME 0` (a first start, not a resumption)
config_classes = set() # config classes whose methods are collected in config_methods
config_methods = set() # code objects of the config classes' own methods and properties (not counted)
config_seq = []        # [module, code, 2 (a TrainConfig among the arguments) | 1 (only groups)] in call order
config_resumed = [0, 0]  # generator resumptions skipped: [TrainConfig, group only]
config_skipped = [0, 0]  # calls of the config classes' own methods skipped: [TrainConfig, group only]

def _register_config_class(cls):
    config_classes.add(cls)
    for klass in cls.__mro__[:-1]:
        for value in vars(klass).values():
            for f in (value.fget, value.fset, value.fdel) if isinstance(value, property) else (value,):
                f = getattr(f, "__func__", f)
                if hasattr(f, "__code__"):
                    config_methods.add(f.__code__)

def _arg_names(code):
    """(names of the plain and keyword-only arguments, name of *args or None, name of **kwargs or None)."""
    n = code.co_argcount + code.co_kwonlyargcount
    star = code.co_varnames[n] if code.co_flags & 0x04 else None                            # CO_VARARGS
    starstar = code.co_varnames[n + bool(star)] if code.co_flags & 0x08 else None           # CO_VARKEYWORDS
    names = argnames[code] = (code.co_varnames[:n], star, starstar)
    return names

def config_kind(frame, code):
    """2: a TrainConfig among the frame's argument values; 1: only config groups; 0: neither (or a config method)."""
    names = argnames.get(code)
    if names is None:
        names = _arg_names(code)
    plain, star, starstar = names
    if not (plain or star or starstar):
        return 0
    loc = frame.f_locals
    values = [loc.get(name) for name in plain]
    if star and isinstance(loc.get(star), tuple):
        values.extend(loc[star])
    if starstar and isinstance(loc.get(starstar), dict):
        values.extend(loc[starstar].values())
    kind = 0
    for x in values:
        cls = type(x)
        tn = cls.__name__
        if tn in CONFIG_TYPES:
            if cls not in config_classes:
                _register_config_class(cls)
            if tn == "TrainConfig":
                kind = 2
            elif not kind:
                kind = 1
    if kind and code in config_methods:
        config_skipped[2 - kind] += 1
        return 0
    return kind

def is_resumption(frame, code):
    if not code.co_flags & GEN_FLAGS:
        return False
    offsets = fresh_offsets.get(code)
    if offsets is None:
        import dis
        offsets = fresh_offsets[code] = {i.offset for i in dis.get_instructions(code)
                                         if i.opname == "RESUME" and i.arg == 0}
    return frame.f_lasti not in offsets if offsets else frame.f_lasti >= 0
totals = {"calls": 0, "transitions": 0, "reentries": 0, "max_module_depth": 0, "unmatched_returns": 0,
          "reentries_direct": 0}

def module_of(code):
    try:
        return modcache[code]
    except KeyError:
        path = os.path.realpath(code.co_filename)
        if path.startswith(PKG):
            mod = "<module>" if code.co_name == "<module>" else os.path.relpath(path, os.path.realpath(ROOT)).replace(os.sep, "/")
        else:
            mod = None
        modcache[code] = mod
        return mod

def profile(frame, event, arg):
    if event == "call":
        mod = module_of(frame.f_code)
        if mod is None:
            return
        if mod == "<module>":
            import_depth[0] += 1
            return
        if import_depth[0]:
            return
        totals["calls"] += 1
        calls[mod] = calls.get(mod, 0) + 1
        code = frame.f_code
        kind = config_kind(frame, code)
        if kind:
            if is_resumption(frame, code):
                config_resumed[2 - kind] += 1
            else:
                config_seq.append((mod, code, kind))
        if runs:
            caller = runs[-1][0]
            if caller == mod:
                runs[-1][1] += 1
            else:
                totals["transitions"] += 1
                edges[(caller, mod)] = edges.get((caller, mod), 0) + 1
                fkey = (stack[-1][1], frame.f_code)
                back = frame.f_back
                direct = back is not None and id(back) == stack[-1][0]
                if direct:
                    direct_edges[(caller, mod)] = direct_edges.get((caller, mod), 0) + 1
                fedges[fkey] = fedges.get(fkey, 0) + 1
                if on_stack.get(mod):
                    totals["reentries"] += 1
                    reentry[(mod, caller)] = reentry.get((mod, caller), 0) + 1
                    reentered.add(fkey)
                    if direct:
                        totals["reentries_direct"] += 1
                runs.append([mod, 1])
                on_stack[mod] = on_stack.get(mod, 0) + 1
                if len(runs) > totals["max_module_depth"]:
                    totals["max_module_depth"] = len(runs)
        else:
            runs.append([mod, 1])
            on_stack[mod] = 1
            totals["max_module_depth"] = max(totals["max_module_depth"], 1)
        stack.append((id(frame), frame.f_code))
    elif event == "return":
        mod = module_of(frame.f_code)
        if mod is None:
            return
        if mod == "<module>":
            import_depth[0] -= 1
            return
        if import_depth[0]:
            return
        fid = id(frame)
        if not any(entry[0] == fid for entry in stack):
            totals["unmatched_returns"] += 1
            return
        while stack:
            top = stack.pop()[0]
            run = runs[-1]
            run[1] -= 1
            if run[1] == 0:
                runs.pop()
                on_stack[run[0]] -= 1
            if top == fid:
                break
            totals["unmatched_returns"] += 1

import time
t0 = time.perf_counter()
sys.setprofile(profile)
try:
    code = coreaug.cli.main(ARGV)
except SystemExit as exc:
    code = exc.code
finally:
    sys.setprofile(None)
elapsed = time.perf_counter() - t0

def fname(code):
    return f"{modcache[code]}:{getattr(code, 'co_qualname', code.co_name)}"
with open(RESULT, "w") as fh:
    json.dump({"exit_code": code, "seconds": elapsed, "coreaug_file": coreaug.__file__, **totals,
               "open_frames_at_end": len(stack),
               "calls_per_module": dict(sorted(calls.items())),
               "edges": [[a, b, n] for (a, b), n in sorted(edges.items())],
               "direct_edges": [[a, b, n] for (a, b), n in sorted(direct_edges.items())],
               "reentry": [[m, c, n] for (m, c), n in sorted(reentry.items())],
               "function_edges": sorted([fname(a), fname(b), n, (a, b) in reentered] for (a, b), n in fedges.items()),
               "config_seq": [[m, fname(c), k] for m, c, k in config_seq],
               "config_resumptions_skipped": config_resumed,
               "config_methods_skipped": config_skipped,
               "coreaug_modules_imported": sorted(m for m in sys.modules if m == "coreaug" or m.startswith("coreaug."))},
              fh, indent=1)
'''


def _scc(nodes: set[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative enough for a few dozen modules)."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        graph[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for n in sorted(nodes):
        if n not in index:
            strong(n)
    return comps


SEQUENCE_SHOWN = 80


def config_path(seq: list[list], min_kind: int) -> dict:
    """The config path of the calls in ``seq`` ([module, function, kind]) with ``kind >= min_kind``.

    ``config_modules``: distinct modules; ``config_calls``: the calls; ``config_returns``: calls whose module
    differs from the previous call's module in the sequence and already appeared earlier in it.
    """
    seen: set[str] = set()
    merged: list[str] = []
    returns = 0
    back: dict[tuple[str, str, str], int] = {}
    functions: dict[str, int] = {}
    calls = 0
    for mod, func, kind in seq:
        if kind < min_kind:
            continue
        calls += 1
        functions[func] = functions.get(func, 0) + 1
        if not merged or merged[-1] != mod:
            if mod in seen:
                returns += 1
                key = (merged[-1], mod, func)
                back[key] = back.get(key, 0) + 1
            merged.append(mod)
            seen.add(mod)
    return {
        "config_modules": len(seen),
        "config_calls": calls,
        "config_returns": returns,
        "config_sequence_length": len(merged),
        "config_sequence": merged[:SEQUENCE_SHOWN],
        "config_functions": dict(sorted(functions.items())),
        "config_return_calls": [[a, f, n] for (a, _, f), n in sorted(back.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


def dynamic_metrics(root: Path, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="training_layer_metrics_") as tmp:
        tmp_path = Path(tmp)
        wrapper = tmp_path / "profile_train.py"
        wrapper.write_text(textwrap.dedent(WRAPPER), encoding="utf-8")
        result = tmp_path / "result.json"
        out_dir = tmp_path / "run"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = "1"
        argv = [*TRAIN_ARGS, "--out", str(out_dir)]
        cmd = [sys.executable, str(wrapper), str(root), str(result), *argv]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        sys.stderr.write(proc.stderr[-3000:])
        if proc.returncode != 0 or not result.exists():
            raise SystemExit(f"profiled run failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        raw = json.loads(result.read_text(encoding="utf-8"))
    if raw["exit_code"] not in (0, None):
        raise SystemExit(f"coreaug train exited {raw['exit_code']}")
    edges = {(a, b) for a, b, _ in raw["edges"]}
    nodes = set(raw["calls_per_module"]) | {a for a, _ in edges} | {b for _, b in edges}
    two_way = sorted({tuple(sorted((a, b))) for a, b in edges if (b, a) in edges})
    direct = {(a, b) for a, b, _ in raw["direct_edges"]}
    two_way_direct = sorted({tuple(sorted((a, b))) for a, b in direct if (b, a) in direct})
    comps = _scc(nodes, edges)
    largest = max(comps, key=len) if comps else []
    largest_direct = max(_scc(nodes, direct), key=len, default=[])
    return {
        "command": "coreaug " + " ".join(argv[:-1] + ["<tmp>"]),
        "child_coreaug_file": raw["coreaug_file"],
        "profiled_seconds": round(raw["seconds"], 2),
        "child_wall_seconds": round(wall, 2),
        "modules_visited": len(raw["calls_per_module"]),
        "calls": raw["calls"],
        "transitions": raw["transitions"],
        "reentries": raw["reentries"],
        "reentry_pairs": len(raw["reentry"]),
        "reentries_direct": raw["reentries_direct"],
        "edges": len(edges),
        "two_way_pairs": len(two_way),
        "two_way_pairs_direct": len(two_way_direct),
        "largest_cycle_component": len(largest) if len(largest) > 1 else 0,
        "largest_cycle_component_direct": len(largest_direct) if len(largest_direct) > 1 else 0,
        "max_module_depth": raw["max_module_depth"],
        "unmatched_returns": raw["unmatched_returns"],
        "open_frames_at_end": raw["open_frames_at_end"],
        "coreaug_modules_imported": len(raw["coreaug_modules_imported"]),
        "config_path": {
            "train_config": config_path(raw["config_seq"], 2),
            "config_or_group": config_path(raw["config_seq"], 1),
            "generator_resumptions_skipped": {"train_config": raw["config_resumptions_skipped"][0],
                                              "config_or_group": sum(raw["config_resumptions_skipped"])},
            "config_method_calls_skipped": {"train_config": raw["config_methods_skipped"][0],
                                            "config_or_group": sum(raw["config_methods_skipped"])},
        },
        "detail": {
            "calls_per_module": raw["calls_per_module"],
            "edges": raw["edges"],
            "two_way_pairs": [list(p) for p in two_way],
            "two_way_pairs_direct": [list(p) for p in two_way_direct],
            "largest_cycle_component": largest if len(largest) > 1 else [],
            "largest_cycle_component_direct": largest_direct if len(largest_direct) > 1 else [],
            "reentry": raw["reentry"],
            "reentry_function_edges": [[c, d, n] for c, d, n, re in raw["function_edges"] if re],
            "two_way_function_edges": [[c, d, n] for c, d, n, _ in raw["function_edges"]
                                       if tuple(sorted((c.split(":")[0], d.split(":")[0]))) in set(two_way)],
        },
    }


# ---------------------------------------------------------------------------------------- report
def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def measure(root: Path, run: bool, timeout: float) -> dict:
    root = root.resolve()
    data = {
        "root": str(root),
        "commit": _git(root, "rev-parse", "--short", "HEAD").strip(),
        "uncommitted_coreaug_files": [line[3:] for line in _git(root, "status", "--porcelain", "--", "coreaug").splitlines()],
        "python": sys.version.split()[0],
        "static": static_metrics(root),
    }
    if run:
        data["run"] = dynamic_metrics(root, timeout)
    return data


def print_summary(d: dict) -> None:
    s = d["static"]
    dirty = f" (+ uncommitted: {', '.join(d['uncommitted_coreaug_files'])})" if d["uncommitted_coreaug_files"] else ""
    print(f"root {d['root']}  commit {d['commit']}{dirty}")
    for key, label in (("train_commands", "coreaug/train + coreaug/commands"), ("package", "all of coreaug/")):
        t = s[key]
        print(f"\n{label}: {t['functions']} functions, {t['over_screen']} over {SCREEN} lines, median {t['median_lines']}")
        for f in t["top"]:
            print(f"  {f['lines']:5d}  {f['file']}:{f['lineno']}  {f['name']}")
    print(f"\nfunctions taking `cfg` in train+commands: {s['cfg_functions']['count']}"
          f" ({s['cfg_functions']['outside_config_py']} outside coreaug/train/config.py)")
    if "run" in d:
        r = d["run"]
        print(f"\nrun: {r['command']}  (child coreaug: {r['child_coreaug_file']}, {r['child_wall_seconds']} s)")
        for k in ("modules_visited", "calls", "transitions", "reentries", "reentry_pairs", "reentries_direct",
                  "edges", "two_way_pairs", "two_way_pairs_direct", "largest_cycle_component",
                  "largest_cycle_component_direct", "max_module_depth", "unmatched_returns"):
            print(f"  {k:24s} {r[k]}")
        print("  two-way pairs:", "; ".join(" <-> ".join(p) for p in r["detail"]["two_way_pairs"]) or "none")
        for key, label in CONFIG_VARIANTS:
            c = r["config_path"][key]
            print(f"  config path ({label}): {c['config_modules']} modules, {c['config_calls']} calls,"
                  f" {c['config_returns']} returns; merged sequence ({c['config_sequence_length']}):")
            print("    " + " > ".join(m.removeprefix("coreaug/").removesuffix(".py") for m in c["config_sequence"][:30])
                  + (" > ..." if c["config_sequence_length"] > 30 else ""))


CONFIG_VARIANTS = (("train_config", "TrainConfig"), ("config_or_group", "TrainConfig or a group"))


def _label(d: dict) -> str:
    dirty = " + uncommitted edits" if d.get("uncommitted_coreaug_files") else ""
    return f"`{d['commit']}`{dirty}"


def compare(measurements: list[dict], names: list[str]) -> str:
    """Markdown tables of several measurements, one column each (the first is the baseline)."""
    lines = ["| | " + " | ".join(f"{n} ({_label(d)})" for n, d in zip(names, measurements)) + " |",
             "|---|" + "---:|" * len(measurements)]

    def row(label: str, get) -> None:  # noqa: ANN001
        cells = []
        for d in measurements:
            try:
                cells.append(str(get(d)))
            except KeyError:
                cells.append("n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("files in train+commands", lambda d: d["static"]["layer_files"])
    row("source lines in train+commands", lambda d: d["static"]["layer_source_lines"])
    for key, label in (("train_commands", "train+commands"), ("package", "all of coreaug/")):
        row(f"functions, {label}", lambda d, k=key: d["static"][k]["functions"])
        row(f"functions > {SCREEN} lines, {label}", lambda d, k=key: d["static"][k]["over_screen"])
        row(f"median function length, {label}", lambda d, k=key: d["static"][k]["median_lines"])
        row(f"longest function, {label}", lambda d, k=key: d["static"][k]["top"][0]["lines"])
    row("functions taking `cfg` (train+commands)", lambda d: d["static"]["cfg_functions"]["count"])
    row("... of those outside train/config.py", lambda d: d["static"]["cfg_functions"]["outside_config_py"])
    for k in ("modules_visited", "calls", "transitions", "reentries", "reentry_pairs", "reentries_direct",
              "edges", "two_way_pairs", "two_way_pairs_direct", "largest_cycle_component",
              "largest_cycle_component_direct", "max_module_depth"):
        row(f"run: {k}", lambda d, k=k: d["run"][k])
    for key, label in CONFIG_VARIANTS:
        for k in ("config_modules", "config_calls", "config_returns"):
            row(f"config path ({label}): {k}", lambda d, key=key, k=k: d["run"]["config_path"][key][k])
    out = ["\n".join(lines)]
    for d, name in zip(measurements, names):
        t = d["static"]["train_commands"]
        tab = [f"\nTop {TOP} longest functions in train+commands, {name} ({_label(d)}):\n",
               "| lines | function | file:line |", "|---:|---|---|"]
        tab += [f"| {f['lines']} | `{f['name']}` | {f['file']}:{f['lineno']} |" for f in t["top"]]
        out.append("\n".join(tab))
    for d, name in zip(measurements, names):
        if "run" in d:
            pairs = d["run"]["detail"]["two_way_pairs"]
            out.append(f"\nTwo-way module pairs, {name}: " + ("; ".join(f"`{x}` <-> `{y}`" for x, y in pairs) or "none"))
            calls = d["run"]["detail"]["reentry_function_edges"]
            out.append(f"\nRe-entering calls (caller -> callee, count), {name}:\n")
            out.append("\n".join(f"* `{c}` -> `{e}` ({n})" for c, e, n in calls) or "* none")
    for d, name in zip(measurements, names):
        if "run" not in d or "config_path" not in d["run"]:
            continue
        paths = d["run"]["config_path"]
        first = paths[CONFIG_VARIANTS[0][0]]["config_sequence"]
        for key, label in CONFIG_VARIANTS:
            c = paths[key]
            same = key != CONFIG_VARIANTS[0][0] and c["config_sequence"] == first
            seq = " > ".join(m.removeprefix("coreaug/").removesuffix(".py") for m in c["config_sequence"])
            more = " > ..." if c["config_sequence_length"] > len(c["config_sequence"]) else ""
            out.append(f"\nConfig path ({label}), {name}, modules with consecutive repeats merged "
                       f"({c['config_sequence_length']}): " + ("the same" if same else f"{seq}{more}"))
            if not same:
                out.append("\nReturns (previous module -> returning call, count): " + ("; ".join(
                    f"`{a.removeprefix('coreaug/')}` -> `{f.removeprefix('coreaug/')}` ({n})"
                    for a, f, n in c["config_return_calls"]) or "none"))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="checkout to measure (default: this repository)")
    p.add_argument("--json", type=Path, help="write the numbers here as JSON")
    p.add_argument("--no-run", action="store_true", help="static metrics only (skip the profiled train run)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for the profiled run (default 300)")
    p.add_argument("--compare", nargs="+", type=Path, metavar="JSON",
                   help="print markdown tables of these JSON files (first = baseline) and exit")
    p.add_argument("--names", help="comma-separated column names for --compare (default: before,after,...)")
    args = p.parse_args(argv)
    if args.compare:
        data = [json.loads(f.read_text(encoding="utf-8")) for f in args.compare]
        names = args.names.split(",") if args.names else ["before", "after", *(f"#{i}" for i in range(3, len(data) + 1))]
        if len(names) != len(data):
            p.error("--names needs one name per --compare file")
        print(compare(data, names), end="")
        return 0
    if not (args.root / "coreaug").is_dir():
        p.error(f"{args.root} has no coreaug/ package")
    data = measure(args.root, not args.no_run, args.timeout)
    print_summary(data)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
