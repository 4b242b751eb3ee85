"""One loader for every shipped network (engine.models.load_network): one cache, one task check."""

from __future__ import annotations

import os

import pytest

from engine import models
from engine.birefringence.generator import load_generator
from engine.models import ModelFileError, resolve_model_file
from engine.screening.network import load_model
from engine.tomography.deep_regularizer import load_deep_regularizer


def test_each_family_refuses_the_others_cards():
    deep = resolve_model_file("deep_regularizer")
    gen = resolve_model_file("birefringence-generator")
    screening = resolve_model_file("screening-compact")
    with pytest.raises(ModelFileError, match="task 'deep-regularizer', not 'screening'"):
        load_model(deep)
    with pytest.raises(ModelFileError, match="not 'deep-regularizer'"):
        load_deep_regularizer(gen, device="cpu")
    with pytest.raises(ModelFileError, match="task None, not 'birefringence-generator'"):
        load_generator(screening, device="cpu")


def test_one_cache_keyed_by_file_and_modification_time(tmp_path):
    import shutil

    src = resolve_model_file("screening-compact")
    for suffix in (".safetensors", ".json"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"copy{suffix}")
    path = tmp_path / "copy.safetensors"
    models._read_cached.cache_clear()
    a = load_model(path)
    b = load_model(path)
    info = models._read_cached.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert a.net is not b.net  # each caller gets its own network, from the shared tensors
    st = os.stat(path.with_suffix(".json"))
    os.utime(path.with_suffix(".json"), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a retrained card
    load_model(path)
    assert models._read_cached.cache_info().misses == 2
