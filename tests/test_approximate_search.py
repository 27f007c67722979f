"""nn.backend faiss_ivf: seeded, exact when every cell is searched, its recall@1 against exact
search measured and reported (nn_eval's reports/nn_eval.json "search"), PQ candidates re-ranked by
their exact rows, and the index kept between runs while the bank and its settings are unchanged."""
import dataclasses
import importlib.util
import logging

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
    assert report == {"backend": "faiss_ivf", "nlist": 16, "nprobe": 16, "pq_bytes": 0, "refine": 0,
                      "recall_at_1": 1.0, "queries_checked": 50}


@pytest.mark.parametrize("pq_bytes", [0, 8])
def test_recall_of_a_partial_search_is_measured_and_seeded(pq_bytes, tmp_path):
    bank, queries = clustered(24_000, clusters=400), clustered(300, clusters=400, seed=1)
    labels = np.random.default_rng(2).integers(0, 2, len(bank))
    ivf = neighbours.Ivf(nlist=64, nprobe=1, pq_bytes=pq_bytes, train_rows=12_000, recall_queries=200)
    first = neighbours.IvfBank(bank, np.arange(len(bank)), labels, ivf, cache_folder=tmp_path / "a").recall(queries)
    again = neighbours.IvfBank(bank, np.arange(len(bank)), labels, ivf, cache_folder=tmp_path / "b").recall(queries)
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


def labelled_bank(n=24_000, clusters=400):
    bank = clustered(n, clusters=clusters)
    return bank, np.arange(len(bank)), np.random.default_rng(2).integers(0, 2, len(bank))


def test_re_ranking_pq_candidates_by_their_exact_rows_recovers_the_nearest(tmp_path):
    bank, rows, labels = labelled_bank()
    queries = clustered(300, clusters=400, seed=1)
    exact = neighbours.search(queries, bank, labels, k=2)
    pq = neighbours.Ivf(nlist=64, nprobe=64, pq_bytes=8, train_rows=12_000, recall_queries=300)
    codes_only = neighbours.IvfBank(bank, rows, labels, pq, cache_folder=tmp_path)
    refined = neighbours.IvfBank(bank, rows, labels, dataclasses.replace(pq, refine=100), cache_folder=tmp_path)
    assert refined.reused == {0: True, 1: True}  # refine acts at search time: the same index
    assert codes_only.recall(queries)["recall_at_1"] < 0.5  # 8-byte codes of 32-d rows: the nearest is often missed
    report = refined.recall(queries)
    assert report["refine"] == 100 and report["recall_at_1"] >= 0.99
    found = refined.search(queries, 2)
    hit = found.real[:, 0] >= exact.real[:, 0] - 1e-5
    assert hit.mean() >= 0.99
    # Re-ranked similarities are the exact ones of the rows found (never above the exact k-th), in decreasing order.
    np.testing.assert_allclose(found.real[hit, 0], exact.real[hit, 0], atol=1e-5)
    assert (found.real <= exact.real + 1e-5).all() and (found.fake <= exact.fake + 1e-5).all()
    assert (found.fake[:, 0] >= found.fake[:, 1]).all() and (found.real[:, 0] >= found.real[:, 1]).all()


def test_the_index_is_kept_and_reused_while_the_bank_and_settings_are_unchanged(tmp_path, caplog):
    bank, rows, labels = labelled_bank(6000, clusters=100)
    queries = clustered(100, clusters=100, seed=1)
    ivf = neighbours.Ivf(nlist=16, nprobe=4, train_rows=3000)
    caplog.set_level(logging.INFO, logger="fakedetect.detectors.neighbours")
    first = neighbours.IvfBank(bank, rows, labels, ivf, cache_folder=tmp_path)
    assert first.reused == {0: False, 1: False} and len(list(tmp_path.glob("*.faiss"))) == 2
    second = neighbours.IvfBank(bank, rows, labels, dataclasses.replace(ivf, nprobe=16), cache_folder=tmp_path)
    assert second.reused == {0: True, 1: True}
    assert sum("reused from" in r.getMessage() for r in caplog.records) == 2
    assert second.indexes[0].nprobe == 16  # a search-time setting applies to the reused index
    np.testing.assert_array_equal(first.search(queries, 3).real, neighbours.IvfBank(
        bank, rows, labels, ivf, cache_folder=tmp_path).search(queries, 3).real)
    changed_row = bank.copy()
    changed_row[17] += 0.01
    assert neighbours.IvfBank(changed_row, rows, labels, ivf, cache_folder=tmp_path).reused == {0: False, 1: False}
    relabelled = labels.copy()
    relabelled[:2] = 1 - relabelled[:2]
    assert neighbours.IvfBank(bank, rows, relabelled, ivf, cache_folder=tmp_path).reused == {0: False, 1: False}
    other_cells = dataclasses.replace(ivf, nlist=8)
    assert neighbours.IvfBank(bank, rows, labels, other_cells, cache_folder=tmp_path).reused == {0: False, 1: False}
    assert len(list(tmp_path.glob("*.faiss"))) == 8
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file behind


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped"])
def test_an_unreadable_index_file_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    bank, rows, labels = labelled_bank(6000, clusters=100)
    queries = clustered(100, clusters=100, seed=1)
    ivf = neighbours.Ivf(nlist=16, nprobe=4, train_rows=3000)
    expected = neighbours.IvfBank(bank, rows, labels, ivf, cache_folder=tmp_path).search(queries, 2)
    path = sorted(tmp_path.glob("*.faiss"))[0]
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"not an index",
                      "flipped": data[:-10] + bytes(b ^ 1 for b in data[-10:])}[damage])
    with caplog.at_level(logging.WARNING):
        rebuilt = neighbours.IvfBank(bank, rows, labels, ivf, cache_folder=tmp_path)
    assert sorted(rebuilt.reused.values()) == [False, True]
    assert [r.levelno for r in caplog.records if "unreadable" in r.getMessage()] == [logging.WARNING]
    found = rebuilt.search(queries, 2)
    np.testing.assert_array_equal(found.real, expected.real)
    np.testing.assert_array_equal(found.fake, expected.fake)
    assert neighbours.IvfBank(bank, rows, labels, ivf, cache_folder=tmp_path).reused == {0: True, 1: True}


def test_pq_codes_must_divide_the_dimension(tmp_path):
    bank, rows, labels = labelled_bank(600, clusters=10)
    with pytest.raises(ValueError, match="nn.ivf.pq_bytes: 5 must divide the feature dimension 32"):
        neighbours.IvfBank(bank, rows, labels, neighbours.Ivf(pq_bytes=5), cache_folder=tmp_path)
