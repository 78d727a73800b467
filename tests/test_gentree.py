"""The generated trees are what every end-to-end test and benchmark stands on."""

from __future__ import annotations

import collections
import os

import pytest

from scripts.gentree import MIB, empty_dirs, generate, tree_digest


def test_same_seed_gives_byte_identical_tree(tmp_path):
    a = generate(tmp_path / "a", "skewed", seed=7, files=400)
    b = generate(tmp_path / "b", "skewed", seed=7, files=400)
    assert a == b
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert empty_dirs(tmp_path / "a") == empty_dirs(tmp_path / "b")


def test_other_seed_gives_other_contents(tmp_path):
    generate(tmp_path / "a", "small", seed=1, files=300)
    generate(tmp_path / "b", "small", seed=2, files=300)
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "b")


def test_files_in_one_tree_differ(tmp_path):
    generate(tmp_path / "t", "small", files=500)
    digests = [md5 for _, md5 in tree_digest(tmp_path / "t").values()]
    assert len(set(digests)) == len(digests)


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("skewed") / "tree"
    stats = generate(root, "skewed", files=1200)
    return root, stats, tree_digest(root)


def test_skewed_counts_match_stats(skewed):
    root, stats, digest = skewed
    assert len(digest) == stats.files == 1200
    assert sum(size for size, _ in digest.values()) == stats.bytes


def test_skewed_has_every_awkward_name_kind(skewed):
    _, _, digest = skewed
    names = [p.rpartition("/")[2] for p in digest]
    assert any(" " in n for n in names)
    assert any("#" in n for n in names)
    assert any("%" in n for n in names)
    assert any("?" in n for n in names)
    assert any("ü" in n for n in names)
    assert any("\u65e5" in n for n in names)  # CJK
    assert any(n.startswith("-") for n in names)


def test_skewed_has_empty_files_and_a_few_large_ones(skewed):
    _, _, digest = skewed
    sizes = [size for size, _ in digest.values()]
    assert sizes.count(0) >= 1
    assert 1 <= sum(1 for s in sizes if s >= MIB) <= 5
    assert sorted(sizes)[len(sizes) // 2] <= 16 * 1024


def test_skewed_has_nested_empty_dirs(skewed):
    root, _, _ = skewed
    empties = empty_dirs(root)
    assert len(empties) >= 3
    assert any(e.count("/") >= 2 for e in empties)
    for e in empties:
        assert os.listdir(root / e) == []


def test_skewed_has_one_dir_with_a_third_of_files(skewed):
    _, stats, digest = skewed
    per_dir = collections.Counter(p.rpartition("/")[0] for p in digest)
    assert per_dir.most_common(1)[0][1] * 3 >= stats.files


def test_skewed_has_chains_at_least_20_deep(skewed):
    _, _, digest = skewed
    assert max(p.count("/") for p in digest) >= 20


def test_profiles_scale_with_files(tmp_path):
    for profile in ("small", "flat", "deep", "sample"):
        stats = generate(tmp_path / profile, profile, files=120)
        assert stats.files == len(tree_digest(tmp_path / profile)) == 120


def test_deep_profile_reaches_60_levels(tmp_path):
    generate(tmp_path / "d", "deep", files=600)
    assert max(p.count("/") for p in tree_digest(tmp_path / "d")) >= 60


def test_big_profile_files_are_full_size_and_distinct(tmp_path):
    stats = generate(tmp_path / "b", "big", files=2)
    digest = tree_digest(tmp_path / "b")
    assert stats.bytes == 2 * 64 * MIB
    assert len({md5 for _, md5 in digest.values()}) == 2


def test_refuses_a_non_empty_root(tmp_path):
    (tmp_path / "x").write_text("hi")
    with pytest.raises(FileExistsError):
        generate(tmp_path, "sample")
