"""The extractor sidecar (``<features>.extractor.json``) and its journey into trained runs.

A run trained on extracted features keeps a copy (``best/extractor.json``); ``predict --video``
extracts new clips with those settings and refuses to go on when the features it would produce
differ from the ones the model learnt from (another extractor version, settings, feature list).
Different package versions are allowed but announced, since a patch release rarely changes
features while refusing would strand every trained model after an upgrade.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from msakit.errors import DataError, RunDirError

RUN_FILE = "extractor.json"


def copy_sidecar_into(data_path: str | Path, directory: str | Path) -> Path | None:
    """Copy the sidecar of the features at ``data_path`` (if there is one) into ``directory``."""
    from msakit.extract.pipeline import sidecar_path

    if str(data_path) == "synthetic":
        return None
    source = sidecar_path(data_path)
    if not source.is_file():
        return None
    target = Path(directory) / RUN_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def run_sidecar(seed_dir: str | Path) -> dict | None:
    """The extractor description a trained run carries, or None."""
    seed_dir = Path(seed_dir)
    for path in (seed_dir / "best" / RUN_FILE, seed_dir / RUN_FILE):
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise RunDirError(f"{path}: unreadable extractor description ({exc}); copy it again from the features' .extractor.json") from None
    return None


def check_compatible(trained: dict, new: dict, where: str) -> None:
    """Raise when features described by ``new`` differ from those a model was ``trained`` on."""
    if trained.get("extractor_version") != new.get("extractor_version"):
        raise DataError(f"{where}: extractor version {new.get('extractor_version')} differs from the run's "
                        f"{trained.get('extractor_version')}; extract with the msakit release that made the training features")
    defaults = {"audio": "descriptors", "vision": "facemesh", "text": "none"}
    for modality, default in defaults.items():  # the feature sets first: the likeliest mismatch, said plainly
        if modality not in trained.get("features", {}):
            continue
        was = trained.get("settings", {}).get(f"{modality}_features", default)
        now = new.get("settings", {}).get(f"{modality}_features", default)
        if was != now:
            raise DataError(f"{where}: {modality} feature set {now!r} differs from the run's {was!r}; the run was trained on "
                            f"{was} features: extract with --{modality}-features {was} (predict --video and serve use the run's own settings)")
    for key, value in trained.get("settings", {}).items():
        if key in ("audio_encoder", "vision_encoder", "text_encoder"):
            continue  # a moved model directory is fine; its content is compared below (model_sha256)
        if new.get("settings", {}).get(key) != value:
            raise DataError(f"{where}: extractor setting {key}={new.get('settings', {}).get(key)!r} differs from the run's {value!r}")
    for modality, spec in trained.get("features", {}).items():
        other = new.get("features", {}).get(modality)
        if other is None:
            raise DataError(f"{where}: no {modality} features, but the run was trained on them")
        if spec.get("model_sha256") != other.get("model_sha256"):
            raise DataError(f"{where}: the {modality} encoder at {other.get('model_dir')} is not the model the run was trained with "
                            f"(files' sha256 {str(other.get('model_sha256'))[:12]} vs the run's {str(spec.get('model_sha256'))[:12]}, "
                            f"from {spec.get('model_dir')}); give the run's model directory")
        for key in ("dim", "rate_hz", "names"):
            if spec.get(key) != other.get(key):
                raise DataError(f"{where}: {modality} feature {key} differs from the run's ({other.get(key)!r:.60} vs {spec.get(key)!r:.60})")
    changed = [f"{name} {trained['versions'][name]} -> {version}" for name, version in new.get("versions", {}).items()
               if name in trained.get("versions", {}) and trained["versions"][name] != version]
    if changed:
        warnings.warn(f"{where}: package versions differ from the training features' ({'; '.join(changed)}); features should match, "
                      "but re-extract the training clips if predictions look off", stacklevel=2)


def check_data_matches_run(seed_dir: str | Path, data_path: str | Path) -> None:
    """Where both a run and a feature file carry an extractor description, refuse a mismatch."""
    from msakit.extract.pipeline import sidecar_path

    trained = run_sidecar(seed_dir)
    if trained is None or str(data_path) == "synthetic":
        return
    path = sidecar_path(data_path)
    if path.is_file():
        try:
            described = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable extractor description ({exc})") from None
        check_compatible(trained, described, str(data_path))
