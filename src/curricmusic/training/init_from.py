"""Starting a run from someone's trained model: ``init_from`` in ``[train]`` and ``[adapt]``.

The folder may be an export (``curricmusic export``), any Hugging Face GPT-NeoX folder of the
same arithmetic with its MidiTok ``tokenizer.json`` beside the weights, or a run's ``model/``
folder (its run's ``tokenizer.json`` one level up). Before a step trains, the model must have
the experiment's shape (:data:`~curricmusic.model.pretrained.SHAPE_FIELDS`: dropout and context
length may differ, they are not weights) and its tokenizer the experiment's token ids; each
mismatch is one line naming what differs. Weights are read from safetensors only, and an
export's recorded content hash is checked as they are read (:mod:`curricmusic.model.hf_folder`).
"""

from __future__ import annotations

from pathlib import Path

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import TOKENIZER_FILE
from curricmusic.config.experiment import ExperimentConfig
from curricmusic.model.initial import model_config_of
from curricmusic.model.pretrained import folder_format, load_pretrained, shape_differences
from curricmusic.model.transformer import MusicTransformer, weights_digest
from curricmusic.music.shared_tokenizer import load_folder_tokenizer, vocabulary_difference
from curricmusic.music.tokenizers import Tokenizer, load_tokenizer

__all__ = ["check_shape", "folder_tokenizer", "start_from"]


def folder_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer a model folder was trained with: MidiTok's file in a Hugging Face folder, the
    run's own ``tokenizer.json`` beside a run's ``model/`` folder."""
    if folder_format(folder) == "hf":
        return load_folder_tokenizer(folder)
    beside = folder.parent / TOKENIZER_FILE
    if not beside.is_file():
        raise UserError(f"{folder}: no {TOKENIZER_FILE} in the run folder around it, so its token ids cannot be checked")
    return load_tokenizer(beside)[0]


def start_from(model: MusicTransformer, folder: Path, tokenizer: Tokenizer, where: str) -> str:
    """Copy the weights of the model in ``folder`` into ``model`` (the experiment's), after
    checking its shape and tokenizer; returns their content hash. ``where`` names the setting in
    messages (``experiment.toml: train.init_from``)."""
    folder = Path(folder)
    loaded = load_pretrained(folder)
    differences = shape_differences(loaded.config, model.config)
    if differences:
        raise UserError(f"{where}: {folder}: a model of another shape: {'; '.join(differences)}")
    difference = vocabulary_difference(folder_tokenizer(folder), tokenizer)
    if difference is not None:
        raise UserError(f"{where}: {folder}: its tokenizer is not the experiment's: {difference}")
    model.load_state_dict(loaded.state_dict())
    return weights_digest(model)


def check_shape(folder: Path, config: ExperimentConfig, where: str) -> None:
    """One line, before any folder is made, when the model in ``folder`` has another shape than
    the experiment's ``[model]`` (its vocabulary is checked against the tokenizer later, by
    :func:`start_from`)."""
    folder = Path(folder)
    theirs = load_pretrained(folder).config
    differences = shape_differences(theirs, model_config_of(config, theirs.vocab_size, where))
    if differences:
        raise UserError(f"{where}: {folder}: a model of another shape: {'; '.join(differences)}")
