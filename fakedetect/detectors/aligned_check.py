"""Does a verdict rest on the file? `fakedetect predict` and `fakedetect serve` give each image its file
facts (fakedetect.data.file_facts, from the header) and score it again after the compare stage's aligned
re-encoding (params `aligned`: re-saved as JPEG 96 by default); a verdict that changes is flagged
(docs/shortcuts.md "Predict and serve: does a verdict rest on the file?")."""
from __future__ import annotations

from fakedetect.data import file_facts
from fakedetect.features import engines
from fakedetect.params import Perturbation

# The file facts each prediction carries, as `file_<fact>`.
FACTS = ("format", "width", "height", "jpeg_quality", "chroma_subsampling", "progressive", "exif", "icc", "mode",
         "bit_depth", "bytes_per_pixel")


def described(alignment: Perturbation) -> str:
    """The re-encoding in words: 're-saved as JPEG 96', 'resized to a 256-px shorter side and re-saved as JPEG 96'."""
    steps = ([f"resized to a {alignment.size}-px shorter side"] if alignment.size is not None else []) + \
            ([f"re-saved as JPEG {alignment.jpeg}"] if alignment.jpeg is not None else [])
    return " and ".join(steps)


def check(detector, results: list, paths: list[str], batch_size: int, workers: int) -> None:
    """Add to each scored prediction its file facts and, after `detector.alignment`, its P(fake), the score
    the threshold applies to and the verdict at the same threshold, and `verdict_rests_on_file`: whether
    that verdict differs."""
    scored = [i for i, result in enumerate(results) if result.status == "ok"]
    for i in scored:
        facts = file_facts.read_facts(paths[i])
        results[i].extra |= {f"file_{fact}": facts.get(fact) for fact in FACTS}
    items = [engines.Item(paths[i], perturbation=detector.alignment) for i in scored]
    as_words = described(detector.alignment)
    for batch in detector.engine.encode(items, detector.params.preprocess.size, batch_size, workers, detector.limits):
        for position, reason, _ in batch.problems:
            results[scored[position]].extra |= {"aligned_as": as_words, "aligned_reason": reason}
        if not batch.positions:
            continue
        p_fake, score, fake = detector.verdicts(batch.features)
        for j, position in enumerate(batch.positions):
            result = results[scored[position]]
            result.extra |= {"aligned_as": as_words, "aligned_p_fake": float(p_fake[j]),
                             "aligned_score": float(score[j]), "aligned_fake": bool(fake[j]),
                             "verdict_rests_on_file": bool(fake[j]) != result.fake}
