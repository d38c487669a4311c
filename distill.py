"""Multilingual student distillation: ``python distill.py teacher=... student=... data=...``.

Not implemented yet (issue: multilingual distillation). This entry point exits with an error
instead of pretending to work.
"""

import sys

if __name__ == "__main__":
    sys.exit(
        "distill.py: multilingual distillation is not implemented yet in this version of biolord. "
        "Train an English model with `python train.py phase=contrastive` meanwhile."
    )
