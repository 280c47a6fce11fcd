"""Private random generators of the modules that draw (seedable draws)."""
from typing import Optional

import torch


def seeded_generator(seed: Optional[int]) -> Optional[torch.Generator]:
    """A CPU :class:`torch.Generator` seeded with ``seed``, or None.

    None (no seed) means "use torch's global generator", which mmengine's
    ``randomness.seed`` seeds; a seed gives the module its own stream, so its
    draws do not depend on (and do not shift) anybody else's.

    Args:
        seed (int, optional): The seed.

    Returns:
        torch.Generator | None
    """
    if seed is None:
        return None
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator
