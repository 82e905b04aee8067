"""MkDocs hook: serve files that live outside ``docs/`` from where they are in the repository, and
show the Sphinx roles of the docstrings as plain code.

* ``notebooks/*.ipynb`` become the tutorial pages ``notebooks/<name>/`` (rendered by mkdocs-jupyter,
  not executed: the test suite executes them);
* ``figures/README.md`` (what each theory figure shows and what was measured) and
  ``benchmarks/results/*.md`` (every benchmark's result table) become pages, with their images
  (in sub-folders too).

Nothing is copied into ``docs/``: each of these files has one copy, and a link from a page to one
of them is checked by ``mkdocs build --strict`` like any other. The files are added before
mkdocs-jupyter's own ``on_files`` runs (higher priority), so that it converts the notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

# (folder of the repository, glob): served at the same path in the site
REPO_FILES = (
    ("notebooks", "*.ipynb"),
    ("figures", "README.md"),
    ("figures", "*.png"),
    ("benchmarks/results", "*.md"),
    ("benchmarks/results", "**/*.png"),
    ("benchmarks/results", "**/*.svg"),
)

# :func:`x`, :class:`~a.b.C` … as rendered from a docstring: a role name, then <code>
_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj|const):(<code>)(~?)([^<]*)</code>")


@event_priority(100)
def on_files(files: Files, config) -> Files:  # noqa: ANN001 - mkdocs' config object
    """Add every repository file of :data:`REPO_FILES` to the site's files."""
    root = Path(config["config_file_path"]).resolve().parent
    for folder, pattern in REPO_FILES:
        for path in sorted((root / folder).glob(pattern)):
            rel = path.relative_to(root).as_posix()
            if files.get_file_from_path(rel) is None:
                files.append(File(rel, str(root), config["site_dir"], config["use_directory_urls"]))
    return files


def _plain_role(match: re.Match) -> str:
    name = match.group(3).rsplit(".", 1)[-1] if match.group(2) else match.group(3)
    return f"<code>{name}</code>"


def on_page_content(html: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs' objects
    """``:func:`x``` → ``x`` (and ``~a.b.C`` → ``C``, as Sphinx shows it)."""
    return _ROLE.sub(_plain_role, html)
