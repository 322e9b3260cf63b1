"""Regenerate the audio-features embedder's standardisation constants.

    python scripts/calibrate_audio_features.py [N_PIECES]

Renders the first N (default 120) Bach chorales of music21's bundled corpus as one piano track
with the default soundfont renderer, computes ``AudioFeaturesEmbedder.raw_features`` for each,
and writes the per-dimension mean and standard deviation to
``src/curricmusic/novelty/embedders/_audio_feature_stats.py``. The constants are fixed so that one clip's
embedding never depends on the other clips of its batch; rerun this only when the feature
definition changes (and bump nothing else: the file's VERSION enters the embedding cache key).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

OUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "curricmusic"
    / "novelty"
    / "embedders"
    / "_audio_feature_stats.py"
)


def main(n_pieces: int = 120) -> None:
    from music21 import corpus
    from symusic import Score

    from curricmusic.music.notes import piano_reduction
    from curricmusic.novelty.embedders import AudioFeaturesEmbedder
    from curricmusic.novelty.render import render

    embedder = AudioFeaturesEmbedder()
    rows = []
    for path in sorted(corpus.getComposer("bach"))[:n_pieces]:
        stream = corpus.parse(path)
        midi = Path("/tmp") / f"calib_{path.stem}.mid"
        stream.write("midi", fp=str(midi))
        score = piano_reduction(Score.from_file(str(midi)))
        audio = render(score, sample_rate=embedder.sample_rate)
        rows.append(embedder.raw_features(audio.samples))
        midi.unlink()
    features = np.stack(rows)
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    version = hashlib.sha256(np.concatenate([mean, scale]).round(6).tobytes()).hexdigest()[:12]

    def literal(values: np.ndarray) -> str:
        return "[\n" + "".join(f"    {v:.6g},\n" for v in values) + "]"

    OUT.write_text(
        '"""Standardisation constants of the audio-features embedder (generated; do not edit).\n\n'
        f"Per-dimension mean and standard deviation of AudioFeaturesEmbedder.raw_features over\n"
        f"{len(rows)} Bach chorales from music21's corpus, piano-reduced and rendered with TimGM6mb\n"
        'at 22.05 kHz. Regenerate with scripts/calibrate_audio_features.py.\n"""\n\n'
        "import numpy as np\n\n"
        f'VERSION = "{version}"\n'
        f"MEAN = np.array({literal(mean)})\n"
        f"SCALE = np.array({literal(scale)})\n"
    )
    print(f"wrote {OUT} from {len(rows)} pieces (version {version})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 120)
