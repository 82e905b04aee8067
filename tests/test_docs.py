"""The documentation site builds: ``mkdocs build --strict`` exits 0, so a broken link, a page
missing from the nav or an API page whose module is gone fails the default test run (and CI).

Also checks what the README promises a newcomer: the set-up commands come first and the README's
links point at files that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _mkdocs() -> list[str]:
    """``python -m mkdocs``; the docs extra (pulled in by dev) must be installed: no silent skip."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]' (dev pulls in the docs extra)")
    return [sys.executable, "-m", "mkdocs"]


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([*_mkdocs(), "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for page in ("index.html", "your-own-loop/index.html", "paper-notes/index.html", "api/coreaug/index.html",
                 "api/spectra/index.html", "notebooks/01_jacobian_spectra/index.html",
                 "figures/fig1_singular_values.png"):
        assert (site / page).is_file(), page
    api = (site / "api" / "spectra" / "index.html").read_text(encoding="utf-8")
    assert "spectra.jacobian" in api and "Per-example Jacobian" in api  # rendered from the docstrings
    assert ":func:" not in api  # Sphinx roles shown as code (docs/hooks/repo_files.py)
    assert "AugmentedCoreset" in (site / "api" / "coreaug" / "index.html").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_setup_commands():
    first_block = re.search(r"```(?:bash)?\n(.*?)```", README, re.S)
    assert first_block is not None
    assert first_block.group(1).splitlines() == ['python3 -m pip install -e ".[dev]"', "python3 -m pytest -q"]
    assert README.index(first_block.group(0)) < README.index("\n## ")  # before any section


def test_readme_keeps_the_own_loop_section_and_its_links_resolve():
    section = README.split("\n## Use it in your own training loop\n", 1)
    assert len(section) == 2, "README needs the section 'Use it in your own training loop'"
    body = section[1].split("\n## ", 1)[0]
    assert "coreaug.AugmentedCoreset(" in body and "coreaug.weighted_loss(" in body
    assert "(docs/your-own-loop.md)" in body
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (REPO / target).exists(), f"README links to a missing file: {target}"
