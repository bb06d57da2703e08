"""SVHN format-1 labels: reading and writing ``digitStruct.mat`` (MATLAB v7.3, i.e. HDF5).

Layout of the real release, reproduced exactly by `write_digitstruct`:

- ``digitStruct/name`` and ``digitStruct/bbox``: [N, 1] object references (MATLAB stores a 1xN struct
  array column-major); the referenced objects live in the ``#refs#`` group.
- a name is a uint16 character array [len, 1] (``MATLAB_class`` "char", ``MATLAB_int_decode`` 2);
- a bbox is a struct group with fields ``height``, ``label``, ``left``, ``top``, ``width``; each field
  is a 1x1 double dataset holding the value when the image has one digit, and a [k, 1] array of
  references ("cell") to 1x1 double datasets when it has k > 1 digits;
- the file starts with MATLAB's 512-byte user block (a 128-byte text header, then zeros).

One job per module: `schema` (the entries and shared constants), `writer` (lays the HDF5 bytes out
itself), `reader` (`read_digitstruct`: the bulk parser with the per-object one as fallback and
reference), `bulk` (the vectorised parser).
"""
from svhn_jax.data.svhn.digitstruct.reader import read_digitstruct, read_digitstruct_per_object
from svhn_jax.data.svhn.digitstruct.schema import FIELDS, DigitBox, Entry
from svhn_jax.data.svhn.digitstruct.writer import write_digitstruct

__all__ = ["FIELDS", "DigitBox", "Entry", "read_digitstruct", "read_digitstruct_per_object", "write_digitstruct"]
