"""What each batch holds: pacings (pure functions of the step) and the windows drawn from the caches.

- :mod:`.pacing`: the schedules of the arms (fixed stages, competence, plateau, baselines);
- :mod:`.windows`: token windows drawn from the prepared caches by a schedule's mixture.
"""
