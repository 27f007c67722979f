"""When each generator we read was released, with the source of the date: the vocabulary the
chronological protocol orders generators by (docs/protocols.md "Generator dates"). A generator
this table does not know is reported as undated, never dated by guess; params.yaml's
`evaluation.generator_dates` adds dates or overrides these.

Dates are ISO prefixes (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`), ordered as text: a year sorts before
any date in it. Names are matched after lower-casing and dropping everything but letters and
digits, so the folder `stable_diffusion_1_4` finds "Stable Diffusion 1.4".
"""
from __future__ import annotations

import re

AI_GENBENCH = "AI-GenBench (2025), training_and_evaluation/ai_gen_bench_metadata/deepfake_timeline.csv"

# AI-GenBench's release dates of the generators our layouts and the common modern sets name.
_TIMELINE = {
    "CycleGAN": "2017-03-30", "Cascaded Refinement Networks": "2017-07-28", "ProGAN": "2017-10-27",
    "StarGAN": "2017-11-24", "BigGAN": "2018-09-28", "IMLE": "2018-11-29", "StyleGAN1": "2018-12-12",
    "GauGAN": "2019-03-18", "StyleGAN2": "2019-12-03", "DDPM": "2020-06-19", "VQGAN": "2020-12-17",
    "DALL-E V1": "2021-01-05", "ADM": "2021-05-11", "StyleGAN3": "2021-06-23", "DALL-E Mini": "2021-07-02",
    "Glide": "2021-12-20", "Latent Diffusion": "2021-12-21", "Midjourney": "2022-02-01",
    "DALL-E 2": "2022-04-07", "MidJourney V2": "2022-04-12", "Imagen V1": "2022-05-23",
    "MidJourney V3": "2022-07-25", "Stable Diffusion 1.1": "2022-08-18", "Stable Diffusion 1.2": "2022-08-18",
    "Stable Diffusion 1.3": "2022-08-18", "Stable Diffusion 1.4": "2022-08-22", "Stable Diffusion 1.5": "2022-10-20",
    "MidJourney V4": "2022-11-05", "Stable Diffusion 2.0": "2022-11-24", "Stable Diffusion 2.1": "2022-12-07",
    "MidJourney V5": "2023-03-15", "Firefly 1": "2023-03-21", "DeepFloyd IF": "2023-04-26",
    "MidJourney V5.1": "2023-05-03", "MidJourney V5.2": "2023-06-23", "Stable Diffusion XL 1.0": "2023-07-26",
    "DALL-E 3": "2023-09-20", "Firefly 2": "2023-10-10", "Stable Diffusion XL Turbo": "2023-11-28",
    "MidJourney V6": "2023-12-21", "Imagen V2": "2024-02-01", "Stable Diffusion 3.0": "2024-02-22",
    "Firefly 3": "2024-04-23", "Imagen V3": "2024-05-14", "FLUX 1 Dev": "2024-08-01", "FLUX 1 Schnell": "2024-08-02",
}

# The names datasets give these generators (folder names) -> the timeline's name.
_ALIASES = {
    "crn": "Cascaded Refinement Networks", "stylegan": "StyleGAN1", "guided": "ADM", "adm": "ADM",
    "dalle": "DALL-E Mini", "dallemini": "DALL-E Mini", "dalle1": "DALL-E V1", "imagen": "Imagen V1",
    "firefly": "Firefly 1", "sd11": "Stable Diffusion 1.1", "sd12": "Stable Diffusion 1.2",
    "sd13": "Stable Diffusion 1.3", "sd14": "Stable Diffusion 1.4", "sdv14": "Stable Diffusion 1.4",
    "sd15": "Stable Diffusion 1.5", "sdv15": "Stable Diffusion 1.5", "sd2": "Stable Diffusion 2.0",
    "sd20": "Stable Diffusion 2.0", "sd21": "Stable Diffusion 2.1", "sdxl": "Stable Diffusion XL 1.0",
    "stablediffusionxl": "Stable Diffusion XL 1.0", "sdxlturbo": "Stable Diffusion XL Turbo",
    "sd3": "Stable Diffusion 3.0", "stablediffusion3": "Stable Diffusion 3.0", "midjourneyv1": "Midjourney",
    "flux1dev": "FLUX 1 Dev", "flux1schnell": "FLUX 1 Schnell",
}

# Names the timeline lacks, dated from their papers (arXiv submission, else the venue) or their source.
_OTHERS = {
    "seeingdark": ("2018-05-04", "Chen et al., Learning to See in the Dark (SITD), arXiv:1805.01934"),
    "sitd": ("2018-05-04", "Chen et al., Learning to See in the Dark (SITD), arXiv:1805.01934"),
    "san": ("2019-06", "Dai et al., Second-order Attention Network for Single Image Super-Resolution, CVPR 2019"),
    "deepfake": ("2019-01-25", "Rossler et al., FaceForensics++ (CNNDetection's deepfake set), arXiv:1901.08971"),
    "whichfaceisreal": ("2018-12-12", "its faces are StyleGAN's (whichfaceisreal.com); StyleGAN's date in " + AI_GENBENCH),
    # The demo's simulated generators: the year of the paper each simulates (fakedetect/data/demo.py).
    "upsamplenearest": ("2016", "Odena, Dumoulin and Olah, Deconvolution and Checkerboard Artifacts, Distill 2016"),
    "transposedconv": ("2019", "Zhang, Karaman and Chang, Detecting and Simulating Artifacts in GAN Fake Images "
                               "(AutoGAN), WIFS 2019"),
    "noisedenoise": ("2022", "Ricker et al., Towards the Detection of Diffusion Model Deepfakes, arXiv:2210.14571"),
}

# UnivFD's sets named by generator and settings (ldm_200_cfg, glide_100_27).
_PREFIXES = {"ldm": "Latent Diffusion", "glide": "Glide"}


def key(name: str) -> str:
    """The name as matched: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _table() -> dict[str, tuple[str, str]]:
    found = {key(name): (date, AI_GENBENCH) for name, date in _TIMELINE.items()}
    found |= {alias: (_TIMELINE[name], AI_GENBENCH) for alias, name in _ALIASES.items()}
    return found | _OTHERS


DATES = _table()  # matched name -> (date, source)


def date_of(generator: str, overrides: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(release date, source) of a generator, or None when neither the table nor `overrides` (params
    evaluation.generator_dates: name -> date) knows it."""
    for name, date in (overrides or {}).items():
        if key(name) == key(generator):
            return date, "params.yaml evaluation.generator_dates"
    name = key(generator)
    if name in DATES:
        return DATES[name]
    prefix = generator.lower().split("_", 1)[0]
    if "_" in generator and prefix in _PREFIXES:
        return _TIMELINE[_PREFIXES[prefix]], f"{AI_GENBENCH} ({_PREFIXES[prefix]})"
    return None


def chronological(generators, overrides: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The dated generators from the oldest (ties by name), and the undated ones, sorted."""
    dates = {g: date_of(g, overrides) for g in generators}
    dated = sorted((g for g, d in dates.items() if d), key=lambda g: (dates[g][0], g))
    return dated, sorted(g for g, d in dates.items() if d is None)
