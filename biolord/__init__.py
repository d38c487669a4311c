"""biolord: multi-phase training of biomedical sentence-embedding models (BioLORD-2023)."""

__version__ = "0.1.0"
