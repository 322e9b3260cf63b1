"""``curricmusic run``: arms x seeds trained, sampled and scored (:mod:`.runner`), then aggregated
into ``results.json`` (:mod:`.results`)."""
