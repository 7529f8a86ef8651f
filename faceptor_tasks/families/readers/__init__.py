"""Dataset readers: ``read_x(root, split, skip_invalid=False) -> FaceDataset`` of raw items, one module per
family. Each understands the original release and the layout the reference prepares (see docs/datasets.md)."""

from .age import read_morph2, read_utkface
from .attributes import read_celeba_attributes
from .expression import read_affectnet, read_ferplus, read_rafdb
from .landmarks import read_300w, read_aflw19, read_cofw, read_wflw
from .parsing import read_celebamask_hq, read_lapa
from .recognition import RecordIODataset, VerificationDataset, read_verification_bin

__all__ = [
    "RecordIODataset",
    "VerificationDataset",
    "read_300w",
    "read_affectnet",
    "read_aflw19",
    "read_celeba_attributes",
    "read_celebamask_hq",
    "read_cofw",
    "read_ferplus",
    "read_lapa",
    "read_morph2",
    "read_rafdb",
    "read_utkface",
    "read_verification_bin",
    "read_wflw",
]
