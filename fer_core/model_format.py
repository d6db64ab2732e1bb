"""What a model file and its card agree on: the names of the layers a model carries its preprocessing in,
the largest centre crop, and how much margin a detector's boxes get before a face is cut out.

Training writes models in this format, inference reads them and the model card validates them, so the
constants live here, below all three: ``training`` builds the layers, ``inference`` recognises them, and
neither has to import the other for a name. This module imports nothing.
"""

from __future__ import annotations

# The fixed centre crop right after a model's input (``training.architectures``), found by this name by
# Grad-CAM (``inference.explain``), which leaves it out of the layers it explains.
CENTER_CROP = "center_crop"
MAX_CROP = 8  # pixels per side: the net sees at least the central 32×32 of a 48×48 face

# The fixed Gaussian blur ``publish`` may put in front of a model (``training.architectures.with_input_blur``).
INPUT_BLUR = "input_blur"

# Fraction of the box side added on each side before cropping, per detector (chosen on validation
# faces by benchmarks/crop_study.py --detector NAME). FACE_MARGIN is the Haar cascade's, the only
# one cards written before BlazeFace record; a card's ``face_crop.margins`` overrides these.
FACE_MARGIN = 0.0
FACE_MARGINS = {"haar": FACE_MARGIN, "blazeface": 0.05, "yunet": -0.05}
