"""The names the pipeline speaks: image families, the family of each generator, and the demo's
simulated generators and control sets. Every module and test takes them from here."""
from __future__ import annotations

# What made an image: a real photograph, or a fake's generator family. `autoregressive` models
# predict image tokens one after another with a transformer and decode them (DALL-E mini: a VQGAN
# decoder), which is neither a GAN's single pass nor a diffusion model's denoising. `other` holds
# every other generator, e.g. the CNN synthesis and face-swap sets of CNNDetection's test suite
# (crn, imle, seeingdark/sitd, san, deepfake, whichfaceisreal).
FAMILIES = ("real", "gan", "diffusion", "autoregressive", "other")

# Generator (folder name, matched case-insensitively) -> family.
GAN_GENERATORS = frozenset({"progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan"})
DIFFUSION_GENERATORS = frozenset({"guided"})
AUTOREGRESSIVE_GENERATORS = frozenset({"dalle"})  # UnivFD's DALL-E set, made by DALL-E mini
DIFFUSION_PREFIXES = ("ldm_", "glide_")  # UnivFD's ldm_200, glide_100_27, ...
OTHER_GENERATORS = frozenset({"crn", "imle", "seeingdark", "sitd", "san", "deepfake", "whichfaceisreal"})

# The offline demo's simulated generators (fakedetect.data.demo makes them), each with the family whose
# artifact it imitates, and its real-only control sets.
DEMO_GENERATOR_FAMILY = {"upsample_nearest": "gan", "transposed_conv": "gan", "noise_denoise": "diffusion"}
DEMO_GENERATORS = tuple(DEMO_GENERATOR_FAMILY)
DEMO_TRAIN_GENERATOR = "upsample_nearest"  # plays ProGAN's role: the only one seen in training
DEMO_BLUR_CONTROL, DEMO_JPEG_CONTROL = "real_blur", "real_jpeg80"  # real patches blurred 5x5, saved as JPEG q80
DEMO_CONTROLS = (DEMO_BLUR_CONTROL, DEMO_JPEG_CONTROL)


def family_of(generator: str) -> str:
    """The family of a generator's images (`other` for a name we do not know)."""
    name = generator.lower()
    if name in GAN_GENERATORS:
        return "gan"
    if name in DIFFUSION_GENERATORS or name.startswith(DIFFUSION_PREFIXES):
        return "diffusion"
    if name in AUTOREGRESSIVE_GENERATORS:
        return "autoregressive"
    return DEMO_GENERATOR_FAMILY.get(name, "other")


def is_generator_name(name: str) -> bool:
    """A folder named like a known generator (a test set of its own, never a class of one)."""
    name = name.lower()
    known = GAN_GENERATORS | DIFFUSION_GENERATORS | AUTOREGRESSIVE_GENERATORS | OTHER_GENERATORS
    return name in known or name in DEMO_GENERATOR_FAMILY or name.startswith(DIFFUSION_PREFIXES)

# The file facts the shortcut audit may use (fakedetect.evaluation.shortcuts; docs/shortcuts.md "The shortcut audit").
FILE_FACTS = ("format", "size", "jpeg_quality", "chroma_subsampling", "progressive", "exif", "icc", "mode", "bit_depth",
              "bytes_per_pixel")
