"""Profiles: named sets of params values (profiles/NAME.yaml) written into params.yaml."""
from __future__ import annotations

import io
import os
from pathlib import Path

from pydantic import ValidationError

from fakedetect import atomic
from fakedetect.params import PARAMS_FILE, Params, ParamsError, describe_errors
from fakedetect.round_trip import round_trip_yaml

PROFILES_DIR = "profiles"


def _merge(base: dict, overlay: dict) -> None:
    """Overlay values onto base in place: mappings merge key by key (an empty one empties), anything
    else replaces."""
    for key, value in overlay.items():
        if value and isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
            comments = base.ca.items if hasattr(base, "ca") else {}
            if key in comments:  # ruamel's note of what stood between the key and the old block value:
                comments[key][3] = None  # kept, it would run the next key into the new value's line


def apply_profile(name: str, path: str | os.PathLike = PARAMS_FILE, profiles: str | os.PathLike = PROFILES_DIR) -> Path:
    """Write profiles/<name>.yaml's values into params.yaml, keeping its comments and every other
    value; the result is validated before it replaces the file. Returns the profile's path."""
    profile = Path(profiles) / f"{name}.yaml"
    if not profile.is_file():
        known = sorted(p.stem for p in Path(profiles).glob("*.yaml"))
        raise ParamsError(f"no profile '{name}' in {profiles}/; available: {', '.join(known) or 'none'}")
    yaml_rt = round_trip_yaml()
    document = yaml_rt.load(Path(path).read_text())
    _merge(document, yaml_rt.load(profile.read_text()) or {})
    try:
        Params.model_validate(document)
    except ValidationError as exc:
        raise ParamsError(f"profile {profile} does not fit the schema:\n  " + describe_errors(exc)) from None
    text = io.StringIO()
    yaml_rt.dump(document, text)
    atomic.write_text(path, text.getvalue())
    return profile
