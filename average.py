"""Weight averaging (model soups): ``python average.py ckpts=[a,b,c] method=uniform|greedy|interpolate``.

Not implemented yet (issue: phases 2 and 3). This entry point exits with an error instead of
pretending to work.
"""

import sys

if __name__ == "__main__":
    sys.exit(
        "average.py: weight averaging is not implemented yet in this version of biolord. "
        "Train with `python train.py phase=contrastive`; the averaging phase comes with model soups support."
    )
