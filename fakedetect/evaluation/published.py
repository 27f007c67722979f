"""Published numbers shown beside ours: one table, each number with the method that published it.

Detection (accuracy % / AP %, None where not published) is compared only with results of the same
method; attribution's figures come from other data sets, so they are shown without deltas.
"""
from __future__ import annotations

DETECTION = {
    # UnivFD (Ojha et al., CVPR 2023) Tables 2-3: CLIP ViT-L/14 linear probe trained on 20-class ProGAN.
    "univfd_linear_probe": {
        "progan": (100.0, 100.0), "cyclegan": (98.50, 99.46), "biggan": (94.50, 99.59),
        "stylegan": (82.00, 97.24), "gaugan": (99.50, 99.98), "stargan": (97.00, 99.60),
        "deepfake": (66.60, 82.45), "sitd": (63.00, 61.32), "san": (57.50, 79.02),
        "crn": (59.50, 96.72), "imle": (72.00, 99.00), "guided": (70.03, 87.77),
        "ldm_200": (94.19, 99.14), "ldm_200_cfg": (73.76, 92.15), "ldm_100": (94.36, 99.17),
        "glide_100_27": (79.07, 94.74), "glide_50_27": (79.85, 95.34), "glide_100_10": (78.14, 94.57),
        "dalle": (86.78, 97.15),
    },
    # The notebook project's README, on its test files (seed_clip_features: test.pt; test_cg.pt, test1.pt,
    # test_dm.pt): 1-NN with a bank of 1000 real and 1000 fake ProGAN features; the Keras FCNN
    # Dense(768, relu) -> Dense(1, sigmoid), 7 epochs.
    "notebook_nn": {"notebook_glide_100": (75.3, None)},
    "notebook_fcnn": {"notebook_cyclegan": (97.3, None), "notebook_dalle": (92.9, None),
                      "notebook_glide_100_dm": (86.9, None)},
}
# Published means, valid only when every set of the method's table was scored.
# RINE (Koutlis & Papadopoulos, ECCV 2024): CLIP ViT-L/14 intermediate blocks, trained on 1-class ProGAN; its
# mean over UnivFD's 19 sets (mean only: shown for the `blocks` detector).
DETECTION_MEAN = {"univfd_linear_probe": (81.38, 93.38), "rine": (91.29, 98.79)}
# What each published table is, beside a detector's figures in reports/compare.json.
NOTES = {"notebook_nn": "the notebook's 1-NN, on its own test files",
         "notebook_fcnn": "the notebook's FCNN, on its own test files",
         "univfd_linear_probe": "UnivFD's linear probe, mean over its 19 test sets (CLIP ViT-L/14)",
         "rine": "RINE, mean over UnivFD's 19 test sets (CLIP ViT-L/14 blocks); mean only"}
MEAN_OVER = {"rine": "univfd_linear_probe"}  # a published mean without a per-set table here: over that table's sets
ALIASES = {"seeingdark": "sitd"}  # CNNDetection's folder name for the SITD set

# Attribution accuracy % per level, each on its own data.
ATTRIBUTION = {"level1": {"notebook": 87.0, "level_up_above": 97.0},
               "level2": {"notebook": 93.0, "level_up_above": 97.0},
               "level3": {"level_up_above": 97.0}}
ATTRIBUTION_NOTE = ("notebook: the notebook project, ImageNet ResNet-50 with its first layers frozen, level 1 trained "
                    "on DALL-E + LAION and tested on Glide + LAION; level_up_above: Level Up (Guarnera et al. 2023), "
                    "ResNet-34, 'above 97% at each level' on its own 83k-image set")


def detection(method: str, test_set: str) -> tuple[float, float | None] | None:
    """The (accuracy, AP) that `method`'s authors published for a test set of this name, if any."""
    return DETECTION.get(method, {}).get(ALIASES.get(test_set, test_set))
