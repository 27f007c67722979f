"""Exact k-NN search against a brute-force cosine computation, on small random banks."""
import importlib.util

import numpy as np
import pytest

from fakedetect.detectors import neighbours


def random_case(seed=0, bank_size=300, queries=70, dim=16):
    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((bank_size, dim), dtype=np.float32)
    labels = rng.integers(0, 2, bank_size)
    return rng.standard_normal((queries, dim), dtype=np.float32), bank, labels


def brute_force(queries, bank, labels):
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    return unit(queries.astype(np.float64)) @ unit(bank.astype(np.float64)).T


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("chunk_size", [7, 64, 1000])
@pytest.mark.fast
def test_top_k_similarities_per_class_are_exact(k, chunk_size):
    queries, bank, labels = random_case()
    found = neighbours.search(queries, bank, labels, k=k, chunk_size=chunk_size)
    similarities = brute_force(queries, bank, labels)
    for label, got in ((0, found.real), (1, found.fake)):
        expected = -np.sort(-similarities[:, labels == label], axis=1)[:, :k]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(found.score, similarities[:, labels == 1].max(1) - similarities[:, labels == 0].max(1),
                               atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.fast
def test_prediction_is_the_majority_of_the_k_nearest(k):
    queries, bank, labels = random_case(seed=1)
    nearest = np.argsort(-brute_force(queries, bank, labels), axis=1)[:, :k]
    expected = (labels[nearest].sum(axis=1) * 2 > k).astype(int)
    np.testing.assert_array_equal(neighbours.search(queries, bank, labels, k=k, chunk_size=50).predict(k), expected)


@pytest.mark.fast
def test_even_k_tie_goes_to_the_nearest():
    bank = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    queries = np.array([[1.0, 0.2], [0.2, 1.0]], dtype=np.float32)
    found = neighbours.search(queries, bank, np.array([1, 0]), k=2)
    np.testing.assert_array_equal(found.predict(2), [1, 0])


@pytest.mark.fast
def test_bank_rows_select_the_bank_inside_a_larger_matrix():
    queries, bank, labels = random_case(seed=2)
    matrix = np.concatenate([np.zeros((5, 16), np.float32), bank[::-1], queries])
    rows = 5 + np.arange(len(bank))[::-1]  # the same bank, read from the matrix in reverse
    direct = neighbours.search(queries, bank, labels, k=3, chunk_size=32)
    inside = neighbours.search(queries, matrix, labels, k=3, chunk_size=32, bank_rows=rows)
    np.testing.assert_allclose(inside.real, direct.real, atol=1e-6)
    np.testing.assert_allclose(inside.fake, direct.fake, atol=1e-6)


@pytest.mark.fast
def test_a_class_smaller_than_k_is_padded_and_outvoted():
    bank = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1]], dtype=np.float32)
    found = neighbours.search(np.array([[0.0, 1.0]], np.float32), bank, np.array([0, 0, 0, 1]), k=3)
    assert np.isneginf(found.fake[0, 1:]).all()
    assert found.predict(3)[0] == 0  # the fake is nearest, but two of the three nearest are real
    assert found.predict(1)[0] == 1


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss is not installed")
@pytest.mark.fast
def test_faiss_backend_agrees_with_numpy():
    queries, bank, labels = random_case(seed=3)
    numpy_found = neighbours.search(queries, bank, labels, k=3, chunk_size=64)
    faiss_found = neighbours.search(queries, bank, labels, k=3, chunk_size=64, backend="faiss")
    np.testing.assert_allclose(faiss_found.real, numpy_found.real, atol=1e-5)
    np.testing.assert_allclose(faiss_found.fake, numpy_found.fake, atol=1e-5)
