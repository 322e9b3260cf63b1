"""What each batch holds: pacings (pure functions of the step), windows drawn from the caches.

- :mod:`.pacing`: one class per pacing, in the registry ``PACINGS``;
- :mod:`.allocation`: whole windows per stage from a mixture's shares, deterministically;
- :mod:`.windows`: training windows from each stage's packed stream;
- :mod:`.heldout`: held-out windows that score every token once.
"""
