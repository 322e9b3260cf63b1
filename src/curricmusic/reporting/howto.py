"""One line on how to read each score, printed next to it on every page that shows it."""

from __future__ import annotations

__all__ = ["RHO", "RHO_MEDIAN", "C_T", "SEPARATION_AUC", "COPY_RATE", "COPIED_SPAN", "FALSE_FLAGS", "OVERLAP", "HOWTO"]

RHO = (
    "distance ratio rho: the sample's distance to its nearest training piece over the median such distance of "
    "held-out real pieces. About 1: as far from the training data as unseen music of the same stages; well below 1: "
    "closer than unseen music (a possible copy); above 1: farther (new material, or unlike the training data)."
)
RHO_MEDIAN = (
    "median rho above 1: the typical sample sits farther from the training data than unseen real music does (not "
    "copying; it may also be less like the music); well below 1: closer (look for copies)."
)
C_T = (
    "C_T (Meehan et al. 2020): a z-score per region of the training data, comparing the samples' distances to the "
    "training pieces with held-out pieces' distances. Well below 0 (say below -3): data copying; about 0: the "
    "samples sit where unseen music does; well above 0: farther than unseen music (underfitting)."
)
SEPARATION_AUC = (
    "separation AUC: how well the embedder's distance tells transposed and re-timed training pieces (copies) from "
    "held-out music; 1 always, 0.5 chance. Below the required level the distance never flags a sample."
)
COPY_RATE = "copy rate: share of samples flagged as copies (0 to 1; lower is better)."
COPIED_SPAN = (
    "longest copied span: the most notes (and bars) in a row that a sample shares with one training piece, "
    "transposed or re-timed; a few notes are common to any music, several bars are a copy."
)
FALSE_FLAGS = "false flags: share of fresh music (new tunes, random melodies) that the same rule flags; 0 is right."
OVERLAP = (
    "overlap (Yang & Lerch 2018): 1 means the samples sit among held-out music as it sits among itself; near 0, they "
    "differ from it in this respect."
)

#: score label -> how to read it
HOWTO = {
    "rho": RHO,
    "median rho": RHO_MEDIAN,
    "C_T": C_T,
    "separation AUC": SEPARATION_AUC,
    "copy rate": COPY_RATE,
    "longest copied span": COPIED_SPAN,
    "false flags": FALSE_FLAGS,
    "overlap": OVERLAP,
}
