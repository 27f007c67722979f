"""Command line: `fakedetect predict IMAGES...`, `serve`, `datasets ROOT...`, `detectors`, `profile NAME`, `store` and
`deps` (also `python -m fakedetect`).

predict's exit status: 0 when every input was scored, 1 when some could not be read (they are
listed with their reason; the others are still scored), 2 for usage errors and for a missing
or incompatible trained run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fakedetect.data.images import IMAGE_EXTENSIONS


def collect(inputs: list[str], list_files: list[str]) -> list[str]:
    """Image files named directly, found below folders (recursively, sorted), or listed one per
    line in list files. Named files are kept whatever their extension: the decoder judges them."""
    named = list(inputs)
    for list_file in list_files:
        with open(list_file, encoding="utf-8") as f:
            named += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    paths = []
    for item in named:
        if os.path.isdir(item):
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames.sort()
                paths += [os.path.join(dirpath, n) for n in sorted(filenames) if n.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            paths.append(item)
    return paths


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least `minimum`."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}")
        return int(text)
    return parse


def predict_command(args: argparse.Namespace) -> int:
    from fakedetect import trained_run
    from fakedetect.stage import UserError

    try:
        paths = collect(args.inputs, args.list)
    except OSError as exc:
        print(f"error: cannot read the list file: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print("error: no image files found in the inputs", file=sys.stderr)
        return 2
    try:
        trained_run.require_lock(Path(args.project))  # before seconds of imports
        from fakedetect.detectors import predict_output
        from fakedetect.predict import Detector  # torch and torchvision load before Keras (docs/architecture.md "Environment facts worth knowing")

        detector = Detector(args.project, args.classifier, args.family, args.engine, args.address, args.detector,
                            args.all, aligned=args.aligned)
        try:
            start = time.perf_counter()
            extract = detector.params.extract
            batch_size = extract.batch_size if args.batch_size is None else args.batch_size
            workers = extract.loader_workers if args.workers is None else args.workers
            rows = [p.row() for p in detector.predict(paths, batch_size, workers)]
            seconds = time.perf_counter() - start
        finally:
            detector.close()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predict_output.write(rows, args.format)
    for line in predict_output.closing(rows, seconds):
        print(line, file=sys.stderr)
    return 1 if any(r["status"] != "ok" for r in rows) else 0


def serve_command(args: argparse.Namespace) -> int:
    """A local page and API over the workspace's trained run (docs/serve.md "Starting it")."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in a server's log, one per request
    from fakedetect import trained_run
    from fakedetect.stage import UserError

    try:
        trained_run.require_served(Path(args.project))  # before seconds of imports
        from fakedetect.serve.service import Service  # torch and torchvision load before Keras

        service = Service(args.project, k=args.neighbours)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from fakedetect.serve.app import create_app

        cap_mb = service.primary.params.ingest.max_file_mb if args.max_upload_mb is None else args.max_upload_mb
        app = create_app(service, int(cap_mb * 2**20))
        print(f"fakedetect serve: http://{args.host}:{args.port}/ (the run in {args.project}; Ctrl-C stops)",
              file=sys.stderr, flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        service.close()
    return 0


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def detectors_command(args: argparse.Namespace) -> int:
    """The kinds, each with its params and their defaults, then the configured detectors and their state."""
    from fakedetect.params import DETECTOR_PARAMS, ParamsError, load_params

    print("kinds (params: default):")
    for kind, schema in DETECTOR_PARAMS.items():
        fields = ", ".join(f"{name}: {'required' if f.is_required() else f.default}"
                           for name, f in schema.model_fields.items())
        print(f"  {kind}: {fields or '-'}")
    try:
        configured = load_params(Path(args.project) / "params.yaml").detectors
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from fakedetect.artifacts import DETECTOR_MODELS

    print("configured (params.yaml detectors):")
    for name, spec in configured.items():
        details = Path(args.project) / DETECTOR_MODELS / name / "detector.json"
        validation = json.loads(details.read_text()).get("validation", {}) if details.is_file() else {}
        fitted = (f"fitted, validation AP {validation.get('ap')}% ({validation.get('how', 'in-sample')})"
                  if details.is_file() else "not fitted: dvc repro compare")
        print(f"  {name}: kind {spec.kind}, features {spec.features}, params {spec.params or '{}'} ({fitted})")
    from fakedetect.predict import default_detector

    name, _, why = default_detector(Path(args.project))
    print(f"predict's default: {name or 'the linear head (linear_eval)'}: {why}")
    return 0


def datasets_command(args: argparse.Namespace) -> int:
    from fakedetect.data import inventory

    return inventory.command(args)


def profile_command(args: argparse.Namespace) -> int:
    from fakedetect.params import ParamsError
    from fakedetect.profiles import apply_profile

    try:
        profile = apply_profile(args.name)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"params.yaml now holds the values of {profile}; see `dvc params diff`, then run `dvc repro`")
    return 0


def deps_command(args: argparse.Namespace) -> int:
    from fakedetect.stage_deps import command

    return command(args.project, args.write)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _weights(weights) -> str:
    """An identity's weights: a description, {'tag': ...} or {'sha256': ...} (shortened)."""
    if isinstance(weights, dict):
        return ", ".join(f"{k} {v[:12] if k == 'sha256' else v}" for k, v in sorted(weights.items()))
    return str(weights)


def store_command(args: argparse.Namespace) -> int:
    """List the feature store's backbone identities, or remove one's features."""
    from pathlib import Path

    from fakedetect.features import feature_store
    from fakedetect.params import ParamsError, load_params

    configured = args.store
    params_file = Path(args.project) / "params.yaml"
    if configured is None and params_file.is_file():
        try:
            configured = load_params(params_file).extract.store
        except ParamsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if configured is not None:
            configured = str(Path(args.project) / configured)  # a relative extract.store is the project's
    root = feature_store.store_root(configured).absolute()
    if args.action != "list":
        return _store_maintenance(root, args)
    if args.remove:
        try:
            entry = feature_store.remove(root, args.remove)
        except KeyError:
            print(f"error: the store {root} holds no backbone {args.remove!r} (see `fakedetect store`)", file=sys.stderr)
            return 2
        except feature_store.InUse:
            print(f"error: an extract process is encoding with backbone {args.remove} now: try again when it ends",
                  file=sys.stderr)
            return 2
        print(f"removed {entry.model_id} ({entry.identity.get('model')}): {entry.images} images, {_size(entry.bytes)}")
        return 0
    entries = feature_store.entries(root)
    print(f"feature store: {root}")
    rows = [["id", "model", "weights", "variant", "images", "size"]]
    for e in entries:
        variant = ", ".join(f"{k} {v}" for k, v in sorted(e.identity.items())
                            if k not in ("model", "weights", "transform"))
        rows.append([e.model_id, str(e.identity.get("model")), _weights(e.identity.get("weights")), variant,
                     str(e.images), _size(e.bytes)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(entries)} backbone(s), {_size(sum(e.bytes for e in entries))}; "
          "`fakedetect store --remove ID` deletes one backbone's features (recomputed when next needed)")
    return 0


def _store_maintenance(root, args: argparse.Namespace) -> int:
    """`fakedetect store verify` (exit 1 when a shard was corrupt) and `fakedetect store compact`."""
    from fakedetect.features import store_admin

    if not root.is_dir():
        print(f"error: no feature store at {root}", file=sys.stderr)
        return 2
    bad = 0
    for store in store_admin.stores(root):
        if args.action == "verify":
            checked = store_admin.verify(store)
            bad += len(checked.corrupt)
            print(f"{checked.model_id}: {checked.shards} shards, {checked.images} images; "
                  f"{len(checked.corrupt)} corrupt (deleted, recomputed when next needed), "
                  f"{len(checked.reindexed)} re-indexed")
        else:
            done = store_admin.compact(store, args.rows_per_shard)
            print(f"{done.model_id}: {done.before} -> {done.after} shards, {done.images} images")
    return 1 if bad else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="fakedetect", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="is each image real or fake, and which family made a fake?")
    p.add_argument("inputs", nargs="*", help="image files or folders (searched recursively)")
    p.add_argument("--list", action="append", default=[], metavar="FILE", help="a file listing image paths, one per line")
    p.add_argument("--detector", metavar="NAME", help="score with this detector of the compare stage "
                   "(models/detectors/NAME; `fakedetect detectors` lists them), or 'best': the one with the best "
                   "validation AP (the default, without --classifier)")
    p.add_argument("--classifier", choices=["linear", "nn"], help="score with a pipeline stage's head instead: "
                   "linear: linear_eval's trained head | nn: nn_eval's nearest neighbours in the training features")
    p.add_argument("--all", action="store_true", help="add every compared detector's P(fake) (p_fake_NAME) to each row")
    p.add_argument("--no-aligned", dest="aligned", action="store_false", help="skip the second scoring after the "
                   "run's aligned re-encoding (JPEG 96) that says whether a verdict rests on the file: twice as fast")
    p.add_argument("--no-family", dest="family", action="store_false",
                   help="P(fake) only, without the GAN/diffusion family: faster, and needs no resnet_attribution run")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", dest="format", action="store_const", const="json", help="one JSON object per image")
    out.add_argument("--csv", dest="format", action="store_const", const="csv", help="CSV with a header row")
    p.add_argument("--project", default=".", help="the project folder holding the trained run (default: here)")
    p.add_argument("--batch-size", type=_whole_number(1), help="images per batch (default: the run's extract.batch_size)")
    p.add_argument("--workers", type=_whole_number(0), help="processes decoding images while the model runs "
                                               "(default: the run's extract.loader_workers)")
    p.add_argument("--engine", choices=["local", "ray"],
                   help="local: this machine | ray: a Ray Data pipeline (default: the run's extract.engine)")
    p.add_argument("--address", help="with --engine ray: auto or ray://host:port of a running cluster "
                                     "(default: the run's extract.ray.address; none = a Ray instance on this machine)")
    p.set_defaults(format="table", run=predict_command)
    sv = commands.add_parser("serve", help="a local web page (and HTTP API) that scores dropped images and shows why")
    sv.add_argument("--project", default=".", help="the project folder holding the trained run (default: here)")
    sv.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=_whole_number(1), default=8000, help="the port (default: 8000)")
    sv.add_argument("--max-upload-mb", type=_positive_number,
                    help="refuse larger files with 413 (default: the run's ingest.max_file_mb)")
    sv.add_argument("--neighbours", type=_whole_number(1), default=5, help="nearest training images shown (default: 5)")
    sv.set_defaults(run=serve_command)
    det = commands.add_parser("detectors", help="list the detector kinds (with their params) and the configured detectors")
    det.add_argument("--project", default=".", help="the project whose params.yaml configures them (default: here)")
    det.set_defaults(run=detectors_command)
    ds = commands.add_parser("datasets", help="fingerprints and file facts of dataset folders (headers only, no pipeline)")
    ds.add_argument("roots", nargs="+", metavar="ROOT", help="dataset folders, read as ingest reads them")
    ds.add_argument("--layout", default="generic", choices=["generic", "cnndetection_test", "univfd_diffusion", "wang2020"],
                    help="how to read each root (default generic: one set of its 0_real/1_fake folders)")
    ds.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split (wang2020: its folder)")
    ds.add_argument("--json", action="store_true", help="the whole report as JSON")
    ds.add_argument("--workers", type=_whole_number(0), default=0, help="processes hashing files (0: one per core)")
    ds.set_defaults(run=datasets_command)
    prof = commands.add_parser("profile", help="write a profile's values (profiles/NAME.yaml) into params.yaml")
    prof.add_argument("name", help="e.g. univfd (the real benchmark) or notebook_features")
    prof.set_defaults(run=profile_command)
    st = commands.add_parser("store", help="list the feature store's backbones (images, size), or remove one's features")
    st.add_argument("action", nargs="?", choices=["list", "verify", "compact"], default="list",
                    help="list (default) | verify: re-hash every shard, set corrupt ones aside | "
                         "compact: rewrite small shards into large ones (docs/feature_store.md \"Verify and compact\")")
    st.add_argument("--rows-per-shard", type=_whole_number(1), default=100_000, help="compact: rows per new shard")
    st.add_argument("--remove", metavar="ID", help="delete the features of the backbone with this id")
    st.add_argument("--store", help="the store's folder (default: the project's extract.store, else "
                                    "$FAKEDETECT_STORE, else the user's cache folder)")
    st.add_argument("--project", default=".", help="the project whose params.yaml may name the store (default: here)")
    st.set_defaults(run=store_command)
    dp = commands.add_parser("deps", help="check (or --write) every stage's code deps in dvc.yaml against its imports")
    mode = dp.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_false", dest="write", help="name each stage's missing and extra "
                      "modules; exit 1 if any (the default)")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps as generated")
    dp.add_argument("--project", default=".", help="the project holding dvc.yaml (default: here)")
    dp.set_defaults(run=deps_command)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
