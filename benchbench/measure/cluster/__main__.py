"""``python -m benchbench.measure.cluster``: the onboarding check (``doctor.main``)."""

import sys

from .doctor import main

sys.exit(main())
