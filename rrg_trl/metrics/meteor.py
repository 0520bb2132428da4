"""METEOR as the R2Gen family reports it: Meteor 1.5 (``meteor-1.5.jar``, English, ``-norm``) over stdio.

There is no faithful pure-Python METEOR: Meteor 1.5 aligns with exact, stem, WordNet-synonym and
paraphrase matchers using its own tables and tuned parameters, and aggregates the corpus score from pooled
statistics. NLTK's ``meteor_score`` is a different metric (other parameters, no paraphrases, mean of
sentence scores) and its numbers are not comparable. So this module drives the original jar, which the
``pycocoevalcap`` wheel ships together with its paraphrase table, and needs a Java runtime. When either is
missing, :func:`meteor_unavailable_reason` says so and callers report METEOR as unavailable; nothing here
ever substitutes another number.

The protocol is the jar's ``-stdio`` mode, used the way pycocoevalcap uses it: one ``SCORE ||| refs ||| hyp``
line per sample returns its statistics, then one ``EVAL ||| stats ||| ...`` line returns every per-sample
score followed by the corpus score.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from rrg_trl.metrics.inputs import Scores, check_pairs

JAR_ENV = "RRG_METEOR_JAR"
JAR_NAME = "meteor-1.5.jar"
PARAPHRASE_FILE = Path("data") / "paraphrase-en.gz"  # read by the jar relative to its own folder
_EOF = object()


class MeteorError(RuntimeError):
    """The Meteor process failed or stopped answering."""


def find_meteor_jar() -> Path | None:
    """``$RRG_METEOR_JAR`` if set, else the jar inside an installed ``pycocoevalcap``; None when neither exists."""
    if os.environ.get(JAR_ENV):
        return Path(os.environ[JAR_ENV])
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "meteor" / JAR_NAME
        if candidate.is_file():
            return candidate
    return None


def find_java() -> str | None:
    """``java`` on PATH, else ``$JAVA_HOME/bin/java``."""
    found = shutil.which("java")
    if found:
        return found
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return None


def meteor_unavailable_reason(jar: str | os.PathLike | None = None, java: str | None = None) -> str | None:
    """None when Meteor 1.5 can run here, otherwise a sentence saying what is missing and how to get it."""
    java = java or find_java()
    if java is None or not (os.access(java, os.X_OK) or shutil.which(java)):
        return f"METEOR needs a Java runtime (java not found{'' if java is None else f' at {java}'}); install a JRE"
    jar_path = Path(jar) if jar is not None else find_meteor_jar()
    if jar_path is None:
        return f"METEOR needs {JAR_NAME}: `pip install pycocoevalcap` (it ships the jar) or set ${JAR_ENV}"
    if not jar_path.is_file():
        return f"METEOR jar not found at {jar_path}"
    if not (jar_path.parent / PARAPHRASE_FILE).is_file():
        return f"METEOR paraphrase table missing: {jar_path.parent / PARAPHRASE_FILE}"
    return None


def _one_line(text: str) -> str:
    """Line breaks would desynchronise the line protocol (pycocoevalcap hangs on them); Meteor's ``-norm``
    tokeniser treats them as spaces anyway, so they become spaces."""
    return text.replace("\r", " ").replace("\n", " ")


def _hypothesis_text(text: str) -> str:
    """pycocoevalcap's treatment of a hypothesis: drop ``|||``, one pass of double space to single."""
    return _one_line(text).replace("|||", "").replace("  ", " ")


def _reference_text(text: str) -> str:
    """A reference containing ``|||`` would become several references in pycocoevalcap; here it stays one."""
    return _one_line(text).replace("|||", " ")


class Meteor:
    """One running Meteor 1.5 process; reuse it across calls (start-up loads a 60 MB paraphrase table).

    Use as a context manager or call :meth:`close`. ``timeout`` bounds the wait for each answer line.
    """

    def __init__(
        self,
        jar: str | os.PathLike | None = None,
        java: str | None = None,
        *,
        max_heap: str = "2G",
        timeout: float = 600.0,
    ):
        reason = meteor_unavailable_reason(jar, java)
        if reason is not None:
            raise MeteorError(reason)
        jar_path = Path(jar) if jar is not None else Path(find_meteor_jar())
        self.timeout = timeout
        java = java or find_java()
        command = [shutil.which(java) or os.path.abspath(java), "-jar", f"-Xmx{max_heap}", jar_path.name]
        command += ["-", "-", "-stdio", "-l", "en", "-norm"]
        self._process = subprocess.Popen(
            command,
            cwd=jar_path.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._lines: queue.Queue = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._lock = threading.Lock()
        # Both pipes are drained continuously so the JVM never blocks on a full pipe while we write.
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_thread.start()

    def _pump_stdout(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.decode("utf-8", errors="replace").strip())
        self._lines.put(_EOF)

    def _pump_stderr(self) -> None:
        for line in self._process.stderr:
            self._stderr.append(line.decode("utf-8", errors="replace").rstrip())

    def _failure(self, what: str) -> MeteorError:
        if self._process.poll() is not None:
            self._stderr_thread.join(timeout=5)  # a dead JVM's last words explain the failure
        tail = "\n".join(self._stderr)
        return MeteorError(f"Meteor {what} (exit code {self._process.poll()}){': ' + tail if tail else ''}")

    def _read_line(self) -> str:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            # A late answer would pair with the wrong request: stop the process so later calls fail loudly.
            self._process.kill()
            self._process.wait()
            raise self._failure(f"gave no answer within {self.timeout:g} s") from None
        if line is _EOF:
            raise self._failure("stopped")
        return line

    def _send(self, lines: list[str]) -> None:
        try:
            self._process.stdin.write("".join(line + "\n" for line in lines).encode("utf-8"))
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self._failure("stopped") from None

    def score(self, hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> Scores:
        """Corpus METEOR (from pooled statistics, as the jar computes it) and per-sample METEOR."""
        hyps, refs = check_pairs(hypotheses, references)
        with self._lock:
            if self._process.poll() is not None:
                raise self._failure("is not running")
            self._send(
                [
                    " ||| ".join(["SCORE", *map(_reference_text, sample_refs), _hypothesis_text(hyp)])
                    for hyp, sample_refs in zip(hyps, refs, strict=True)
                ]
            )
            stats = [self._read_line() for _ in hyps]
            self._send([" ||| ".join(["EVAL", *stats])])
            answers = [self._read_line() for _ in range(len(hyps) + 1)]
        try:
            values = [float(a) for a in answers]
        except ValueError as err:
            raise MeteorError(f"unexpected answer from Meteor: {err}") from None
        return Scores(values[-1], values[:-1])

    def close(self) -> None:
        """Stop the Java process (idempotent)."""
        process = getattr(self, "_process", None)
        if process is None or process.poll() is not None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    def __enter__(self) -> Meteor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def meteor(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    jar: str | os.PathLike | None = None,
    java: str | None = None,
) -> Scores:
    """One-shot METEOR (starts and stops a Meteor process); raises :class:`MeteorError` when unavailable."""
    with Meteor(jar, java) as scorer:
        return scorer.score(hypotheses, references)
