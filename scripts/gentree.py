"""Deterministic source trees for tests and benchmarks.

    python -m scripts.gentree ROOT --profile small|big|flat|deep|skewed|sample [--files N] [--seed N]

The same profile, seed and file count give a byte-identical tree (names, contents, sizes and
mtimes). Contents come from one seeded random pool, sliced at a seeded offset behind a header
that names the file, so files differ from one another and do not compress.

Profiles:
  small   20,000 files of 1-16 KiB over ~2,000 lopsided folders, one folder holds a third.
  big     20 files of 64 MiB.
  flat    one folder of 200,000 empty or tiny files.
  deep    chains of folders 60 levels deep, files at every level.
  skewed  the test tree: 5,000 files, one folder with a third of them, chains >= 25 deep,
          names with spaces, '#', '%', '?', unicode and a leading dash, empty files, empty
          (and nested empty) folders, mostly small sizes with a few of 1-5 MiB.
  sample  a few hundred files for the README's demo.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
PROFILES = ("small", "big", "flat", "deep", "skewed", "sample")
DEFAULT_FILES = {"small": 20_000, "big": 20, "flat": 200_000, "deep": 6_000, "skewed": 5_000, "sample": 300}
BIG_FILE_BYTES = 64 * MIB
MTIME_BASE = 1_700_000_000  # fixed mtimes keep regenerated trees identical, metadata included
_POOL_BYTES = 8 * MIB

# Name kinds the skewed tree must contain (the copier must carry each unchanged).
NAME_KINDS = {
    "plain": "file_{i:05d}.txt",
    "space": "with space {i:05d}.dat",
    "hash": "hash#{i:05d}.bin",
    "percent": "pct%20{i:05d}%.txt",
    "question": "what?{i:05d}.txt",
    "unicode": "ünïcødé_{i:05d}.txt",
    "cjk": "日本語ファイル_{i:05d}.txt",
    "dash": "-dash_{i:05d}.txt",
}


@dataclass(frozen=True)
class TreeStats:
    files: int
    dirs: int
    bytes: int


@dataclass
class _Plan:
    dirs: list[str] = field(default_factory=list)  # relpaths, parents before children
    files: list[tuple[str, int]] = field(default_factory=list)  # (relpath, size)
    big_files: list[tuple[str, int]] = field(default_factory=list)  # written chunk by chunk


# --------------------------------------------------------------------------- planning


def _lopsided_dirs(rng: random.Random, count: int, prefix: str = "") -> list[str]:
    """A folder tree with deep chains and bushy tops: each new folder either deepens the
    last one or hangs under an early (biased) one."""
    dirs = [prefix.rstrip("/")] if prefix else [""]
    for i in range(count):
        if rng.random() < 0.3:
            parent = dirs[-1]
        else:
            parent = dirs[int(len(dirs) * rng.random() ** 2)]
        name = f"d{i:04d}"
        dirs.append(f"{parent}/{name}" if parent else name)
    return dirs[1:] if not prefix else dirs


def _spread(rng: random.Random, dirs: list[str], n: int) -> list[str]:
    """Hand n files to folders with heavy-tailed (Pareto) weights."""
    if n <= 0 or not dirs:
        return []
    weights = [rng.paretovariate(1.1) for _ in dirs]
    return rng.choices(dirs, weights=weights, k=n)


def _join(d: str, name: str) -> str:
    return f"{d}/{name}" if d else name


def _plan_small(rng: random.Random, n: int) -> _Plan:
    plan = _Plan()
    ndirs = max(1, n // 10)
    plan.dirs = _lopsided_dirs(rng, ndirs)
    crowded = plan.dirs[min(len(plan.dirs) - 1, ndirs // 7)]
    n_crowded = math.ceil(n / 3)
    owners = [crowded] * n_crowded + _spread(rng, plan.dirs + [""], n - n_crowded)
    for i, d in enumerate(owners):
        plan.files.append((_join(d, f"f{i:06d}.bin"), rng.randint(1 * KIB, 16 * KIB)))
    return plan


def _plan_big(rng: random.Random, n: int) -> _Plan:
    plan = _Plan()
    plan.big_files = [(f"big{i:03d}.bin", BIG_FILE_BYTES) for i in range(n)]
    return plan


def _plan_flat(rng: random.Random, n: int) -> _Plan:
    plan = _Plan(dirs=["flat"])
    for i in range(n):
        size = 0 if rng.random() < 0.5 else rng.randint(1, 64)
        plan.files.append((f"flat/f{i:06d}", size))
    return plan


def _plan_deep(rng: random.Random, n: int, depth: int = 60, per_level: int = 10) -> _Plan:
    plan = _Plan()
    chains = max(1, math.ceil(n / (depth * per_level)))
    slots = []
    for c in range(chains):
        d = f"chain{c:03d}"
        for level in range(depth):
            d = f"{d}/l{level:02d}" if level else d
            plan.dirs.append(d)
            slots.append(d)
    for i in range(n):
        d = slots[i % len(slots)]
        plan.files.append((_join(d, f"f{i:06d}.bin"), rng.randint(1 * KIB, 4 * KIB)))
    return plan


def _skewed_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.08:
        return 0
    if r < 0.98:
        return rng.randint(1, 16 * KIB)
    return rng.randint(16 * KIB, 128 * KIB)


def _plan_skewed(rng: random.Random, n: int) -> _Plan:
    plan = _Plan()
    kinds = list(NAME_KINDS)

    crowded = "crowded dir #1 ünï"
    chain_a = ["deep"] + [f"l{k:02d}" for k in range(1, 25)]  # 25 levels
    chain_b = ["-dash chain"] + [f"lvl {k} #%ü" for k in range(1, 22)]  # 22 levels, odd names
    chains = []
    for chain in (chain_a, chain_b):
        path = ""
        for part in chain:
            path = _join(path, part)
            plan.dirs.append(path)
            chains.append(path)
    plan.dirs.append(crowded)
    others = _lopsided_dirs(rng, max(3, n // 40), prefix="tree")
    plan.dirs += others
    named = ["with space", "hash#dir", "pct%dir", "what?dir", "ünïcødé", "日本語", "-leading dash"]
    plan.dirs += named
    empties = ["empty", "empty nested", "empty nested/a", "empty nested/a/b", "empty nested/a/b/c",
               "tree/empty inside", "空のフォルダ", "-empty dash"]
    plan.dirs += empties

    n_crowded = math.ceil(n / 3)
    n_root = min(len(kinds), n - n_crowded)  # every name kind at the root ...
    n_chain = min(len(chains) * 3, max(0, n - n_crowded - n_root) // 4)
    n_big = max(1, min(5, n // 1000))
    rest = max(0, n - n_crowded - n_root - n_chain)
    owners = [""] * n_root + [crowded] * n_crowded
    owners += [chains[i % len(chains)] for i in range(n_chain)]
    owners += _spread(rng, [""] + others + named, rest)
    big_from = n_root + n_crowded
    big_slots = set(rng.sample(range(big_from, len(owners)), min(n_big, max(0, len(owners) - big_from))))
    for i, d in enumerate(owners):
        if i < n_root:
            kind = kinds[i]
        elif i - n_root < len(kinds):  # ... and in the crowded folder
            kind = kinds[i - n_root]
        else:
            kind = rng.choice(kinds)
        name = NAME_KINDS[kind].format(i=i)
        if i in big_slots:
            plan.big_files.append((_join(d, name), rng.randint(1 * MIB, 5 * MIB)))
        else:
            plan.files.append((_join(d, name), _skewed_size(rng)))
    # the first few files are empty whatever the rng says: empty files are guaranteed
    for k in range(min(3, len(plan.files))):
        plan.files[k] = (plan.files[k][0], 0)
    return plan


def _plan_sample(rng: random.Random, n: int) -> _Plan:
    plan = _Plan()
    layout = ["docs", "docs/reports", "docs/reports/2023", "docs/reports/2024", "photos",
              "photos/holiday 2024", "photos/holiday 2024/day 1", "code", "code/src", "code/src/lib",
              "music", "music/ünïcødé", "archive", "archive/old", "archive/old/older", "empty folder"]
    plan.dirs = layout
    homes = layout[:-1] + [""]
    exts = [".txt", ".md", ".jpg", ".py", ".csv", ".log"]
    for i in range(n):
        d = homes[i % len(homes)] if i < len(homes) else rng.choice(homes)
        size = rng.randint(100, 64 * KIB) if i % 100 else rng.randint(256 * KIB, 1 * MIB)
        plan.files.append((_join(d, f"item {i:04d}{exts[i % len(exts)]}"), size))
    return plan


_PLANNERS = {"small": _plan_small, "big": _plan_big, "flat": _plan_flat, "deep": _plan_deep,
             "skewed": _plan_skewed, "sample": _plan_sample}


# --------------------------------------------------------------------------- writing


def _write_small(path: str, size: int, header: bytes, pool: bytes, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if size:
            head = header[:size]
            os.write(fd, head + pool[offset:offset + size - len(head)])
    finally:
        os.close(fd)


def _write_big(path: str, size: int, header: bytes, pool: bytes, rng: random.Random) -> None:
    """A seeded block repeated, each MiB behind its own header so no two chunks are equal."""
    with open(path, "wb", buffering=0) as f:
        written, chunk = 0, 0
        while written < size:
            n = min(MIB, size - written)
            head = header + f"@{chunk:08d}\n".encode()
            off = rng.randrange(0, len(pool) - MIB)
            f.write((head + pool[off:off + n])[:n])
            written += n
            chunk += 1


def generate(root: Path, profile: str, seed: int = 0, files: int | None = None) -> TreeStats:
    """Write the profile's tree under root (created if missing, must be empty)."""
    if profile not in _PLANNERS:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    n = DEFAULT_FILES[profile] if files is None else files
    if n < 0:
        raise ValueError("--files must be >= 0")
    rng = random.Random(f"{profile}:{seed}:{n}")
    plan = _PLANNERS[profile](rng, n)
    pool = random.Random(f"pool:{seed}").randbytes(_POOL_BYTES + 64 * KIB)

    base = str(root)
    made: set[str] = set()
    for d in plan.dirs:
        if d not in made:
            os.makedirs(os.path.join(base, d), exist_ok=True)
            made.add(d)
    total = 0
    for i, (rel, size) in enumerate(plan.files):
        parent = rel.rpartition("/")[0]
        if parent and parent not in made:
            os.makedirs(os.path.join(base, parent), exist_ok=True)
            made.add(parent)
        path = os.path.join(base, rel)
        header = f"{profile}:{seed}:{rel}\n".encode()
        offset = rng.randrange(0, _POOL_BYTES)
        _write_small(path, size, header, pool, offset)
        os.utime(path, (MTIME_BASE + i, MTIME_BASE + i))
        total += size
    for i, (rel, size) in enumerate(plan.big_files):
        parent = rel.rpartition("/")[0]
        if parent and parent not in made:
            os.makedirs(os.path.join(base, parent), exist_ok=True)
            made.add(parent)
        path = os.path.join(base, rel)
        _write_big(path, size, f"{profile}:{seed}:{rel}".encode(), pool, rng)
        os.utime(path, (MTIME_BASE - 1 - i, MTIME_BASE - 1 - i))
        total += size
    all_dirs = set(made)
    for d in made:  # count implicit parents too
        while "/" in d:
            d = d.rpartition("/")[0]
            all_dirs.add(d)
    return TreeStats(files=len(plan.files) + len(plan.big_files), dirs=len(all_dirs), bytes=total)


# --------------------------------------------------------------------------- verifying


def _walk(root: str, rel: str = ""):
    """(relpath, DirEntry) for every entry below root, not following symlinks."""
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        entries = list(it)
    for e in entries:
        r = f"{rel}/{e.name}" if rel else e.name
        yield r, e
        if e.is_dir(follow_symlinks=False):
            yield from _walk(root, r)


def tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """{relpath: (size, md5 hex)} of every regular file under root, '/'-separated."""
    out: dict[str, tuple[int, str]] = {}
    for rel, e in _walk(str(root)):
        if e.is_file(follow_symlinks=False):
            with open(e.path, "rb") as f:
                digest = hashlib.file_digest(f, "md5").hexdigest()
            out[rel] = (e.stat(follow_symlinks=False).st_size, digest)
    return out


def empty_dirs(root: Path) -> list[str]:
    """Relpaths of the folders under root that hold nothing at all, sorted."""
    out = []
    for rel, e in _walk(str(root)):
        if e.is_dir(follow_symlinks=False):
            with os.scandir(e.path) as it:
                if next(it, None) is None:
                    out.append(rel)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.gentree", description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("--profile", choices=PROFILES, required=True)
    p.add_argument("--files", type=int, default=None, help="number of files (scales the profile)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        stats = generate(args.root, args.profile, seed=args.seed, files=args.files)
    except (FileExistsError, ValueError) as e:
        print(f"gentree: {e}", file=sys.stderr)
        return 2
    print(f"{args.root}: {stats.files} files, {stats.dirs} dirs, {stats.bytes} bytes "
          f"({time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
