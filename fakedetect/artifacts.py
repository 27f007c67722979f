"""Where the pipeline's artifacts live, relative to the project root: the paths dvc.yaml
declares, named once for the stage scripts, the predictor and the benchmarks (a test checks
that dvc.yaml declares every one)."""

MANIFEST = "data/manifest.csv"  # ingest
FILE_FACTS = "data/file_facts.csv"  # ingest: each file's header facts (format, size, JPEG quality, ...)
INGEST_METRICS = "metrics/ingest.json"
INGEST_REPORT = "reports/ingest.json"  # the details behind each metrics file's headline figures
AUDIT_METRICS = "metrics/audit.json"  # audit: the shortcut audit of the file facts
AUDIT_REPORT = "reports/audit.json"
AUDIT_PLOT = "plots/audit.csv"
PREPROCESSED = "data/preprocessed"  # preprocess: the images
PREPROCESSED_MANIFEST = "data/preprocessed.csv"
PREPROCESS_PLOT = "plots/preprocess.png"
FEATURES = "data/features"  # extract_clip
EXTRACT_METRICS = "metrics/extract.json"
TSNE_PLOT = "plots/tsne.png"
TSNE_COORDS = "plots/tsne.csv"
NN_METRICS = "metrics/nn_eval.json"
NN_REPORT = "reports/nn_eval.json"
NN_CURVES = "plots/nn_eval"
LINEAR_MODEL = "models/linear.keras"
LINEAR_TRAINING_LOG = "dvclive/linear_train"  # DVCLive: metrics.json and plots/metrics/**.tsv
LINEAR_METRICS = "metrics/linear_eval.json"
LINEAR_REPORT = "reports/linear_eval.json"
LINEAR_CURVES = "plots/linear_eval"
ACCURACY_CHART = "plots/accuracy_vs_published.png"
ATTRIBUTION_MODELS = "models/attribution"
ATTRIBUTION_METRICS = "metrics/attribution.json"
ATTRIBUTION_REPORT = "reports/attribution.json"
ATTRIBUTION_PLOTS = "plots/attribution"
ATTRIBUTION_PICTURE = "plots/attribution.png"
ATTRIBUTION_TRAINING_LOG = "dvclive/resnet_attribution"  # DVCLive, one prefix per level
ROBUSTNESS_METRICS = "metrics/robustness.json"
ROBUSTNESS_REPORT = "reports/robustness.json"
ROBUSTNESS_CURVES = "plots/robustness"  # <method>_<jpeg|blur>.csv, drawn by the top-level plots
ROBUSTNESS_PICTURE = "plots/robustness.png"
DETECTOR_MODELS = "models/detectors"  # compare: one folder per configured detector
COMPARE_METRICS = "metrics/compare.json"
COMPARE_REPORT = "reports/compare.json"
FORMAT_RELIANCE_METRICS = "metrics/format_reliance.json"  # compare: each detector's change when the format is aligned
COMPARE_PLOTS = "plots/compare"  # sets.csv (detector x test set), headline.csv (detector x figure)
PROTOCOLS_METRICS = "metrics/protocols.json"  # protocols, per detector: the mean held-out AP
PROTOCOLS_WORST_METRICS = "metrics/protocols_worst.json"  # the worst held-out AP
PROTOCOLS_NEXT_METRICS = "metrics/protocols_next.json"  # the mean AP on the next window
PROTOCOLS_REPORT = "reports/protocols.json"  # every fold, detector and held-out set
PROTOCOLS_PLOTS = "plots/protocols"  # held_out.csv (detector x held-out generator), windows.csv (AUC per window)
