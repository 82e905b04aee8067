"""The ``coreaug`` command line: one entry point, one sub-command per job.

Each sub-command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together and is the **one place** where errors
become what a user sees:

* a usage error (an unknown flag, ``--fraction abc``) prints one usage line and one error line and
  raises ``SystemExit(2)`` (argparse's convention; ``--help`` raises ``SystemExit(0)``);
* a user error raised by the command layer — a project error (:class:`~coreaug.errors.CoreaugError`,
  :class:`~spectra.errors.SpectraError`), an ``OSError`` (no permission, disk full, a file in the
  way), a ``ValueError`` or running out of memory — prints one line ``coreaug: error: …``, exit 2;
* Ctrl-C, even while the CLI is still importing torch, prints ``coreaug: interrupted``, exit 130;
* warnings print as one line ``coreaug: warning: …``.

Anything else is a bug and keeps its traceback; ``COREAUG_DEBUG=1`` shows the traceback of user
errors too. This module imports nothing heavy at import time, so that an early Ctrl-C lands inside
:func:`main`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import NoReturn, Sequence

# name -> (module implementing add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "info": ("coreaug.commands.info", "list datasets, models, augmentations and presets"),
    "spectra": ("coreaug.commands.spectra", "Jacobian spectrum of a model on a data subset, clean vs perturbed/augmented (JSON+NPZ)"),
    "select": ("coreaug.commands.select", "select a weighted coreset / random / max-loss subset and write it to a file"),
    "train": ("coreaug.commands.train", "train one experiment (preset + config file + flags) into a run folder"),
    "report": ("coreaug.commands.report", "tables and plots (accuracy, time, speed-up vs full-aug) from run folders"),
    "sweep": ("coreaug.commands.sweep", "run a grid (methods x selectors x fractions x seeds) into OUT/<run>/, skip done, resume, report"),
    "figures": ("coreaug.commands.figures", "regenerate every figure (PNG + PDF + CSV/JSON) on the embedded digits data"),
}


class CoreaugArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are two lines (a short usage line, then the error), exit 2.

    Sub-command parsers made by ``add_subparsers`` inherit this class.
    """

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        self.argv = list(sys.argv[1:] if args is None else args)  # seen by _VersionAction
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        command = " COMMAND" if self._subparsers is not None else ""
        self._print_message(f"usage: {self.prog}{command} [options]  (all options: {self.prog} --help)\n", sys.stderr)
        self.exit(2, f"coreaug: error: {_one_line(message)}\n")


class _VersionAction(argparse.Action):
    """``--version``: prints ``coreaug X.Y.Z`` and exits 0, but only as the sole argument (else a usage error)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:  # noqa: ANN003
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        if len(getattr(parser, "argv", [option_string])) != 1:  # the sole argument (an abbreviation counts)
            parser.error(f"{option_string} takes no other arguments")
        _print_version()


def _print_version() -> NoReturn:
    """``coreaug X.Y.Z`` on stdout (like argparse's own version action), exit 0."""
    from coreaug import __version__

    sys.stdout.write(f"coreaug {__version__}\n")
    raise SystemExit(0)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = CoreaugArgumentParser(
        prog="coreaug",
        description="Data-efficient augmentation: train on augmented coresets, inspect Jacobian spectra.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print 'coreaug VERSION' and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for a user error, or ``None`` when ``exc`` is a bug (keep its traceback)."""
    from coreaug.errors import CoreaugError
    from spectra.errors import SpectraError

    if isinstance(exc, (CoreaugError, SpectraError)):
        return _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, OSError):
        from coreaug.io import os_reason

        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{os_reason(exc)}"
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        first = _one_line(str(exc)).split(". ")[0]
        return f"out of memory{': ' + first if first else ''}; try a smaller --batch-size or fewer examples"
    if isinstance(exc, ValueError):  # UnicodeDecodeError included
        return f"{type(exc).__name__}: {_one_line(str(exc))} (COREAUG_DEBUG=1 shows the traceback)"
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"coreaug: warning: {_one_line(str(message))}", file=sys.stderr if file is None else file)


class _Interrupts:
    """How one CLI call answers SIGINT (Ctrl-C): always ``coreaug: interrupted`` on stderr and exit 130.

    * While the CLI imports torch & co. (:func:`build_parser`) the process exits at once (``os._exit``):
      a ``KeyboardInterrupt`` raised inside a half-done import, or inside a Python callback of torch's C++
      start-up, can surface later as an unrelated exception, be swallowed by a library's bare ``except``, or
      abort the process. Nothing has been written yet at that point.
    * Afterwards the first Ctrl-C raises ``KeyboardInterrupt`` so the run releases its lock on the way out
      (any exception it turns into still ends as "interrupted", and one swallowed by a library still exits
      130); a second Ctrl-C exits at once. Files stay consistent either way: every write is atomic and a run
      folder survives even SIGKILL (docs/reliability.md: "Run folders that survive anything").
    * As the process's own entry point (``main()`` without ``argv``: the console script, ``python -m coreaug``)
      a command that returned ends the process with ``os._exit(code)`` (stdout/stderr flushed) rather than
      through interpreter shutdown: with torch loaded that takes a while, during which Python resets SIGINT
      to its default (a Ctrl-C then killed the process by signal, or was lost and the exit code was 0), and a
      ``KeyboardInterrupt`` that crossed certain C code made Python die by SIGINT after printing. Every
      file has been written and closed by then.
    """

    def __init__(self) -> None:
        self.count = 0
        self.immediate = True  # until the heavy imports are done
        self.previous: tuple[object] | None = None

    def handler(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.immediate or self.count > 1:
            _exit_interrupted()
        raise KeyboardInterrupt

    def install(self) -> None:
        """Install :meth:`handler` for SIGINT, on the main thread only and unless SIGINT is ignored (a job started
        with ``nohup`` or ``&`` from a script inherits that, and keeps it, as Python itself does)."""
        import signal

        self.previous = None
        try:
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
                self.previous = (signal.signal(signal.SIGINT, self.handler),)
        except ValueError:  # not the main thread
            pass

    def restore(self) -> None:
        """Put back the SIGINT handler :meth:`install` replaced."""
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous[0] if self.previous[0] is not None else signal.SIG_DFL)


def end_process(code: int, message: str = "") -> NoReturn:
    """Flush stdout/stderr, write ``message`` to file descriptor 2 and end the process now with ``code``
    (``os._exit``: no interpreter shutdown; see :class:`_Interrupts`). Also how a sweep's job process ends
    (:func:`coreaug.launch.main`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - ending anyway (a closed pipe)
            pass
    if message:
        os.write(2, message.encode())
    os._exit(code)


def _exit_interrupted() -> NoReturn:
    """Print ``coreaug: interrupted`` and end the process now, with exit code 130."""
    end_process(130, "coreaug: interrupted\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coreaug`` console script; returns the exit code (usage errors: ``SystemExit(2)``).

    Ctrl-C prints ``coreaug: interrupted`` and gives exit code 130 (see :class:`_Interrupts`); called without
    ``argv`` (as the process's entry point) an interrupted command ends the process itself.
    """
    standalone = argv is None
    interrupts = _Interrupts()
    interrupts.install()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = _main(argv, interrupts)
        if interrupts.count:  # a library swallowed the KeyboardInterrupt: still answer it
            raise KeyboardInterrupt
    except BaseException as exc:
        interrupts.immediate = True  # from here on a Ctrl-C ends the process at once
        if not (isinstance(exc, KeyboardInterrupt) or interrupts.count):
            raise
        if os.environ.get("COREAUG_DEBUG"):
            import traceback

            traceback.print_exc()
        print("coreaug: interrupted", file=sys.stderr)
        code = 130
    finally:
        if not standalone:
            interrupts.restore()
    if standalone:
        end_process(code)
    return code


def _main(argv: Sequence[str] | None, interrupts: _Interrupts | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        _print_version()  # without building the parser, which imports torch and every command
    parser = build_parser()  # imports torch & co.: inside main so an early Ctrl-C is handled
    if interrupts is not None:
        interrupts.immediate = False
    args = parser.parse_args(argv)  # --help and usage errors raise SystemExit (0 / 2), as argparse does
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except Exception as exc:  # noqa: BLE001 - classified below; bugs are re-raised
        if interrupts is not None and interrupts.count:
            raise  # main() reports the interrupt
        message = user_error_message(exc)
        if message is None or os.environ.get("COREAUG_DEBUG"):
            raise
        print(f"coreaug: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
