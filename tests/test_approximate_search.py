"""nn.backend faiss_ivf: seeded, exact when every cell is searched, and its recall@1 against exact
search measured and reported (nn_eval's reports/nn_eval.json "search")."""
import importlib.util

import numpy as np
import pandas as pd
import pytest

from fakedetect.detectors import neighbours, pipeline_detectors, registry
from fakedetect.params import Params

pytestmark = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss is not installed")


def clustered(n, dim=32, clusters=40, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    return centres[rng.integers(0, clusters, n)] + 0.4 * rng.standard_normal((n, dim), dtype=np.float32)


@pytest.mark.fast
def test_searching_every_cell_is_exact_and_recall_is_one():
    bank, queries = clustered(3000), clustered(200, seed=1)
    labels = np.random.default_rng(2).integers(0, 2, len(bank))
    exact = neighbours.search(queries, bank, labels, k=3)
    ivf = neighbours.Ivf(nlist=16, nprobe=16, train_rows=1000, recall_queries=50)
    approximate = neighbours.search(queries, bank, labels, k=3, backend="faiss_ivf", ivf=ivf)
    np.testing.assert_allclose(approximate.real, exact.real, atol=1e-5)
    np.testing.assert_allclose(approximate.fake, exact.fake, atol=1e-5)
    report = neighbours.IvfBank(bank, np.arange(len(bank)), labels, ivf).recall(queries)
    assert report == {"backend": "faiss_ivf", "nlist": 16, "nprobe": 16, "pq_bytes": 0, "recall_at_1": 1.0,
                      "queries_checked": 50}


@pytest.mark.parametrize("pq_bytes", [0, 8])
def test_recall_of_a_partial_search_is_measured_and_seeded(pq_bytes):
    bank, queries = clustered(24_000, clusters=400), clustered(300, clusters=400, seed=1)
    labels = np.random.default_rng(2).integers(0, 2, len(bank))
    ivf = neighbours.Ivf(nlist=64, nprobe=1, pq_bytes=pq_bytes, train_rows=12_000, recall_queries=200)
    first = neighbours.IvfBank(bank, np.arange(len(bank)), labels, ivf).recall(queries)
    again = neighbours.IvfBank(bank, np.arange(len(bank)), labels, ivf).recall(queries)
    assert first == again and first["queries_checked"] == 200 and first["pq_bytes"] == pq_bytes
    assert 0.0 < first["recall_at_1"] < 1.0  # one cell of 64 (and PQ codes): nearest rows are missed, and counted
    wider = neighbours.IvfBank(bank, np.arange(len(bank)), labels, neighbours.Ivf(
        nlist=64, nprobe=64, pq_bytes=pq_bytes, train_rows=12_000, recall_queries=200)).recall(queries)
    assert wider["recall_at_1"] > first["recall_at_1"]


@pytest.mark.fast
def test_the_knn_detector_searches_as_nn_says_and_reports_an_approximate_search():
    """nn_eval's detector (the registry's knn, params nn): nn.ivf's settings reach the index."""
    matrix = clustered(600)
    rows = pd.DataFrame({"label": np.tile([0, 1], 300), "split": ["train"] * 400 + ["test"] * 200})
    whole = [("all", matrix.shape[1])]

    def fitted(nn: dict):
        return pipeline_detectors.fit_knn(Params(nn=nn), matrix, rows, None)

    exact = fitted({})
    assert exact.model.search_report(matrix[400:]) is None
    approximate = fitted({"backend": "faiss_ivf", "ivf": {"nprobe": 1000, "nlist": 3}})
    np.testing.assert_allclose(approximate.score(registry.Inputs(matrix[400:], whole)).ranking,
                               exact.score(registry.Inputs(matrix[400:], whole)).ranking, atol=1e-5)
    report = approximate.model.search_report(matrix[400:])
    assert report["recall_at_1"] == 1.0 and report["queries_checked"] == 200 and report["nlist"] == 3
