"""SynthFaces: the procedural face dataset embedded in Faceptor (no download, exact labels).

See docs/synthfaces.md for what each label means and how it is drawn.
"""

from .generator import SynthFaces, SynthSample, Variation
from .identity import Identity, make_identity
from .labels import CELEBA_ATTRIBUTES, EXPRESSIONS, LAPA_CLASSES, SYNTH_ATTRIBUTES

__all__ = [
    "CELEBA_ATTRIBUTES",
    "EXPRESSIONS",
    "LAPA_CLASSES",
    "SYNTH_ATTRIBUTES",
    "Identity",
    "SynthFaces",
    "SynthSample",
    "Variation",
    "make_identity",
]
