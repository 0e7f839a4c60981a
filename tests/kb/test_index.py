"""Index choice and handling: size thresholds, factory validation, training, query-time knobs."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from ragsc.errors import ConfigError
from ragsc.kb import choose_factory
from ragsc.kb import index as ix

from ._fakes import rand_unit


@pytest.mark.parametrize("n, dim, expected", [
    (0, 8, "Flat"),
    (1, 384, "Flat"),
    (9_999, 384, "Flat"),
    (10_000, 384, "HNSW32"),
    (10_000, 8, "HNSW32"),
    (999_999, 384, "HNSW32"),
])
def test_choose_factory_thresholds(n, dim, expected):
    assert ix.FLAT_MAX == 10_000 and ix.HNSW_MAX == 1_000_000
    assert choose_factory(n, dim) == expected


@pytest.mark.parametrize("n, dim, nlist", [(1_000_000, 384, 4096), (1_000_000, 8, 4096),
                                           (4_000_000, 512, 8192), (1_000_000, 100, 4096),
                                           (1_000_000, 3, 4096)])
def test_choose_factory_beyond_a_million_is_a_trained_ivf(n, dim, nlist):
    factory = choose_factory(n, dim)  # nlist = 2 ** round(log2(4 * sqrt(n)))
    assert factory != "HNSW32" and f"IVF{nlist}," in factory
    index = ix.new_index(factory, dim)
    assert ix.needs_training(index) and faiss.extract_index_ivf(index.index).nlist == nlist


@pytest.mark.parametrize("n, dim", [(5, 8), (50_000, 16), (2_000_000, 384), (2_000_000, 8), (2_000_000, 100)])
def test_every_chosen_factory_is_buildable(n, dim):
    index = ix.new_index(choose_factory(n, dim), dim)
    assert isinstance(index, faiss.IndexIDMap2) and index.d == dim
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT


def test_invalid_factory_is_a_config_error():
    with pytest.raises(ConfigError, match="invalid FAISS factory string 'IVF,Nope'"):
        ix.new_index("IVF,Nope", 8)
    with pytest.raises(ConfigError):
        ix.new_index("PQ3", 8)  # 8 dims do not split into 3 sub-quantisers


def test_capabilities_by_index_type():
    flat, hnsw, ivf = ix.new_index("Flat", 8), ix.new_index("HNSW16", 8), ix.new_index("IVF4,Flat", 8)
    assert not ix.needs_training(flat) and not ix.needs_training(hnsw) and ix.needs_training(ivf)
    assert ix.can_remove(flat) and not ix.can_remove(hnsw) and ix.can_remove(ivf)
    assert ix.can_reconstruct(flat) and ix.can_reconstruct(hnsw) and not ix.can_reconstruct(ivf)


def test_train_and_its_errors():
    index = ix.new_index("IVF4,Flat", 8)
    with pytest.raises(ConfigError, match="cannot train the index on 2 vectors"):
        ix.train(index, rand_unit(2))
    ix.train(index, rand_unit(200))
    assert not ix.needs_training(index)
    ix.train(index, rand_unit(1))  # already trained: a no-op, no error
    flat = ix.new_index("Flat", 8)
    ix.train(flat, rand_unit(1))  # nothing to train
    assert flat.ntotal == 0


def test_set_search_params():
    ivf = ix.new_index("IVF8,Flat", 8)
    ix.train(ivf, rand_unit(400))
    ix.set_search_params(ivf, nprobe=5)
    assert faiss.extract_index_ivf(faiss.downcast_index(ivf.index)).nprobe == 5
    ix.set_search_params(ivf, ef_search=99)  # not an HNSW: ignored
    assert ix.get_search_params(ivf) == {"nprobe": 5, "ef_search": None, "k_factor": None}
    hnsw = ix.new_index("HNSW16", 8)
    ix.set_search_params(hnsw, ef_search=77, nprobe=3)  # nprobe ignored
    assert faiss.downcast_index(hnsw.index).hnsw.efSearch == 77
    opq = ix.new_index("OPQ4_8,IVF8,PQ4x4", 8)  # IVF behind a pre-transform
    ix.set_search_params(opq, nprobe=6)
    assert faiss.extract_index_ivf(faiss.downcast_index(opq.index)).nprobe == 6
    ix.set_search_params(ix.new_index("Flat", 8), nprobe=3, ef_search=3)  # ignored, no error


def test_ids_survive_in_the_id_map():
    index = ix.new_index("Flat", 8)
    x = rand_unit(5)
    index.add_with_ids(x, np.array([10, 20, 30, 40, 50], dtype=np.int64))
    index.remove_ids(np.array([20], dtype=np.int64))
    _, ids = index.search(x[[0, 4]], 1)
    assert ids.ravel().tolist() == [10, 50]
    np.testing.assert_allclose(index.reconstruct(40), x[3], atol=1e-6)
