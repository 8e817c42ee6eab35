"""Encoding an index's records on a Ray cluster (``index build --ray``, ``index add --ray``).

The store stays on the machine that runs the command, with its one writer: the driver reads
the texts of each chunk of records still without a vector (the chunks the single-process build
would encode, :func:`index.parts.update_dense`), Ray Data spreads the chunks over one
model-holding worker per GPU of the cluster (else one per CPU), and the vectors come back to
the driver, which saves each as a pending chunk and commits them as a single-process build
does.  A worker encodes a whole chunk with the same :class:`~retriever.encoder.Encoder` call,
so the vectors are those of the single-process build (up to the float rounding of another
thread count or device).

``ray`` is an extra (``pip install mathmatch[ray]``): it is imported inside the functions that
use it, so this module imports without it.

Example:
    >>> encoders = RayEncoders(RayConfig())  # doctest: +SKIP
    >>> build_index(IndexConfig(LoadConfig([corpus], out)), encoders)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from retriever.encoder import Encoder, EncoderSpec

logger = logging.getLogger(__name__)

RAY_INSTALL = "--ray needs the `ray` extra: pip install mathmatch[ray]"
# The object store of a local Ray, unless given: a quarter of the memory, at most 2 GiB (the
# texts of a window of chunks and their vectors pass through it; more spills to disk).
LOCAL_STORE_CAP = 2 << 30
# Chunks in flight per worker: one Ray Data run encodes at most this many per worker (its
# workers load the model once per run), or a quarter of the object store's texts.
CHUNKS_PER_WORKER = 16
# Seconds the workers of a run may take to start (a model to load; a cluster to scale up).
ACTOR_START_TIMEOUT_S = 600
# What every Ray worker needs in its environment: models are never fetched.
_WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


def require_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ImportError: when the extra is not installed, with the command that installs it.
    """
    try:
        import ray
        import ray.data  # noqa: F401  (the data extra)
    except ImportError as exc:
        raise ImportError(RAY_INSTALL) from exc
    return ray


@dataclass
class RayConfig:
    """Where and how wide Ray runs.

    Args:
        address: None (or ``local``) starts a Ray on this machine, sized to it; ``auto``
            joins the cluster this node belongs to (``ray start``); ``ray://HEAD:10001``
            connects to a cluster's head through the Ray client.
        num_cpus: CPUs of a local Ray (default: the machine's).
        object_store_mb: the object store of a local Ray (default: a quarter of the
            memory, at most 2 GiB).
        workers: model-holding workers (default: one per GPU of the cluster when encoding on
            CUDA, else one per *cpus_per_worker* CPUs).
        cpus_per_worker: CPUs a CPU worker takes (its torch threads).

    Example:
        >>> RayConfig(address="auto").local
        False
    """

    address: str | None = None
    num_cpus: int | None = None
    object_store_mb: int | None = None
    workers: int | None = None
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.address in ("", "local"):
            self.address = None
        for name in ("num_cpus", "object_store_mb", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker must be at least 1, got {self.cpus_per_worker}")

    @property
    def local(self) -> bool:
        return self.address is None


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def start_ray(cfg: RayConfig) -> bool:
    """Start or join Ray as *cfg* says; a Ray already initialised in this process is used as
    it is.  Returns whether this call started it (the caller then shuts it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    runtime_env = {"env_vars": dict(_WORKER_ENV)}
    if cfg.local:
        store = (cfg.object_store_mb << 20) if cfg.object_store_mb else \
            min(LOCAL_STORE_CAP, _memory_bytes() // 4)
        ray.init(num_cpus=cfg.num_cpus or os.cpu_count(), object_store_memory=store,
                 include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
        logger.info("started a local Ray: %d CPUs, object store %d MiB",
                    cfg.num_cpus or os.cpu_count(), store >> 20)
    else:
        ray.init(address=cfg.address, log_to_driver=False, runtime_env=runtime_env)
        resources = ray.cluster_resources()
        logger.info("joined the Ray cluster at %s: %d CPUs, %d GPUs, %d nodes", cfg.address,
                    resources.get("CPU", 0), resources.get("GPU", 0), len(ray.nodes()))
    return True


def stop_ray(started: bool) -> None:
    """Shut Ray down if :func:`start_ray` started it."""
    if started:
        require_ray().shutdown()


@dataclass(frozen=True)
class Placement:
    """How many model-holding workers run, and what each takes."""

    workers: int
    device: str  # cpu or cuda
    num_cpus: float
    num_gpus: float


def placement(cfg: RayConfig, device: str = "auto") -> Placement:
    """One worker per GPU of the cluster when *device* allows CUDA and the cluster has GPUs,
    else one per ``cpus_per_worker`` CPUs (call it with Ray started).

    Raises:
        RuntimeError: ``cuda`` asked for and the cluster has no GPU.
    """
    resources = require_ray().cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if device == "cuda" and not gpus:
        raise RuntimeError("--device cuda: the Ray cluster has no GPU; use --device auto or cpu")
    if device != "cpu" and gpus:
        return Placement(cfg.workers or gpus, "cuda", 1, 1)
    cpus = int(resources.get("CPU", 1))
    return Placement(cfg.workers or max(1, cpus // cfg.cpus_per_worker), "cpu",
                     cfg.cpus_per_worker, 0)


def worker_spec(name: str, checksum: str) -> EncoderSpec:
    """The encoder *name* resolved on a worker's node, checked to be the driver's model
    (every node needs the same package and model files).

    Raises:
        RuntimeError: the node's model is another (another checksum).
    """
    spec = EncoderSpec.resolve(name)
    if spec.checksum != checksum:
        import socket

        raise RuntimeError(f"{socket.gethostname()}: the encoder {name!r} there ({spec.path}, "
                           f"checksum {spec.checksum[:12]}...) is not the driver's "
                           f"({checksum[:12]}...): install the same model on every node")
    return spec


class ChunkEncoder:
    """A Ray Data worker: loads the encoder once, then encodes whole chunks, one per batch.

    A batch holds ``chunk`` (its number) and ``texts``; the result, per chunk, its vectors and
    passage counts as bytes (float32 ``[P, dim]``, int64 ``[n]``), with the seconds spent.
    """

    def __init__(self, name: str, checksum: str, device: str, batch_size: int,
                 threads: int, backend: str = "torch") -> None:
        import torch

        if device == "cpu":
            torch.set_num_threads(threads)
        self.encoder = Encoder(worker_spec(name, checksum), device=device,
                               batch_size=batch_size, backend=backend)
        self.encoder.dim  # noqa: B018  (the model loaded here, not in the first batch's time)
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray], passages: bool = False,
                 stride: int | None = None) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"chunk": [], "vecs": [], "counts": [], "dim": [],
                                "seconds": [], "worker": []}
        for chunk, texts in zip(batch["chunk"], batch["texts"], strict=True):
            texts = [str(t) for t in texts]
            t = time.perf_counter()
            if passages:
                vecs, counts = self.encoder.encode_passages(texts, stride)
            else:
                vecs = self.encoder.encode(texts)
                counts = np.ones(len(texts), dtype=np.int64)
            out["seconds"].append(time.perf_counter() - t)
            out["chunk"].append(int(chunk))
            out["vecs"].append(np.ascontiguousarray(vecs, dtype=np.float32).tobytes())
            out["counts"].append(np.asarray(counts, dtype=np.int64).tobytes())
            out["dim"].append(int(vecs.shape[1]))
            out["worker"].append(self.worker)
        return {"chunk": np.asarray(out["chunk"], dtype=np.int64),
                "vecs": np.asarray(out["vecs"], dtype=object),
                "counts": np.asarray(out["counts"], dtype=object),
                "dim": np.asarray(out["dim"], dtype=np.int64),
                "seconds": np.asarray(out["seconds"], dtype=np.float64),
                "worker": np.asarray(out["worker"], dtype=object)}


@dataclass
class WorkerStats:
    """What one worker encoded in one build: chunks, texts, vectors and busy seconds."""

    chunks: int = 0
    texts: int = 0
    vectors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Texts per busy second."""
        return self.texts / self.seconds if self.seconds else 0.0


class RayEncoder:
    """An encoder for :func:`index.parts.update_dense` whose chunks are encoded on Ray.

    :meth:`encode_chunks` is what the build calls; :meth:`encode`, :attr:`dim` and
    :attr:`window` run a local copy of the model on the CPU (the recall check of an
    approximate index, the passage settings).

    Args:
        spec: the encoder.
        cfg: where Ray runs (started on first use if it is not).
        device: ``auto``, ``cpu`` or ``cuda`` for the workers.
        batch_size: texts per forward pass on a worker.
        backend: how the workers run the model (a name, resolved for their device:
            :meth:`RayEncoders.backend`).
        progress: Ray Data's progress bars.
    """

    def __init__(self, spec: EncoderSpec, cfg: RayConfig, device: str = "auto",
                 batch_size: int = 64, backend: str = "torch", progress: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = spec
        self.backend = backend
        self.cfg = cfg
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.stats: dict[str, WorkerStats] = {}
        self.started = False

    @cached_property
    def _local(self) -> Encoder:
        from retriever.backends import runnable

        # The workers' backend where it runs here (it is of the same family as torch's else).
        backend = self.backend if runnable(self.backend, "cpu") is None else "torch"
        return Encoder(self.spec, device="cpu", batch_size=self.batch_size, backend=backend)

    @property
    def dim(self) -> int:
        return self._local.dim

    @property
    def window(self) -> int:
        return self._local.window

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self._local.encode(texts, **kwargs)

    def encode_passages(self, texts: Sequence[str], stride: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
        return self._local.encode_passages(texts, stride)

    def close(self) -> None:
        """Shut down the Ray this encoder started (one it found running is left alone)."""
        stop_ray(self.started)
        self.started = False

    def encode_chunks(self, chunks: Iterable[Sequence[str]], passages: bool = False,
                      stride: int | None = None
                      ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """``(vectors, passage counts or None)`` of each chunk of texts, in order, each as soon
        as it and those before it are encoded.

        *chunks* is read lazily, a window at a time (at most :data:`CHUNKS_PER_WORKER` per
        worker, or a quarter of the object store's worth of text); each window is one Ray
        Data run.
        """
        ray = require_ray()
        self.started = start_ray(self.cfg) or self.started
        where = placement(self.cfg, self.device)
        budget = ray.cluster_resources().get("object_store_memory", 1 << 30) / 4
        logger.info("encoding on Ray: %d %s workers", where.workers, where.device.upper())
        window: list[list[str]] = []
        size = 0
        for texts in chunks:
            window.append(list(texts))
            size += sum(len(t) for t in window[-1])
            if len(window) >= CHUNKS_PER_WORKER * where.workers or size >= budget:
                yield from self._run(window, where, passages, stride)
                window, size = [], 0
        if window:
            yield from self._run(window, where, passages, stride)
        if self.stats:
            logger.info("encoded %d chunks (%d records) on %d Ray workers: %s",
                        sum(s.chunks for s in self.stats.values()),
                        sum(s.texts for s in self.stats.values()), len(self.stats),
                        ", ".join(f"{s.rate:.1f}" for s in self.stats.values()) +
                        " records per busy second each")

    def _run(self, window: list[list[str]], where: Placement, passages: bool,
             stride: int | None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """One Ray Data run over *window*; its chunks yielded in order."""
        ray = require_ray()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = self.progress
        ctx.verbose_progress = False
        # Every worker up before the first chunk is handed out (else the first one up may take
        # them all), or an error naming the missing resources.
        ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
        # One block per chunk: the chunks are spread over the workers as they free up.
        ds = ray.data.from_items([{"chunk": i, "texts": t} for i, t in enumerate(window)],
                                 override_num_blocks=len(window))
        ds = ds.map_batches(
            ChunkEncoder, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"name": self.spec.name, "checksum": self.spec.checksum,
                                   "device": where.device, "batch_size": self.batch_size,
                                   "threads": int(where.num_cpus), "backend": self.backend},
            fn_kwargs={"passages": passages, "stride": stride},
            # One chunk at a time per worker: the chunks go to whichever worker is free.
            compute=ray.data.ActorPoolStrategy(size=min(where.workers, len(window)),
                                               max_tasks_in_flight_per_actor=1),
            num_cpus=where.num_cpus, num_gpus=where.num_gpus)
        done: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        following = 0
        for row in ds.iter_rows():
            counts = np.frombuffer(row["counts"], dtype=np.int64).copy()
            vecs = np.frombuffer(row["vecs"], dtype=np.float32).reshape(-1, row["dim"]).copy()
            chunk = int(row["chunk"])
            if counts.size != len(window[chunk]) or counts.sum() != vecs.shape[0]:
                raise RuntimeError(f"Ray worker {row['worker']} returned {vecs.shape[0]} "
                                   f"vectors for chunk {chunk} of {len(window[chunk])} texts")
            stats = self.stats.setdefault(str(row["worker"]), WorkerStats())
            stats.chunks += 1
            stats.texts += counts.size
            stats.vectors += vecs.shape[0]
            stats.seconds += float(row["seconds"])
            done[chunk] = (vecs, counts if passages else None)
            while following in done:
                yield done.pop(following)
                following += 1
        if following != len(window):
            raise RuntimeError(f"Ray returned {following} of {len(window)} chunks")


@dataclass
class RayEncoders:
    """The encoders of an index built on Ray (see :class:`index.build.Encoders`): the specs as
    :data:`retriever.encoder.ENCODERS` resolves them, the encoding spread over Ray workers.

    Example:
        >>> encoders = RayEncoders(RayConfig(num_cpus=2))
    """

    cfg: RayConfig = field(default_factory=RayConfig)
    progress: bool = False
    loaded: list[RayEncoder] = field(default_factory=list)
    started: bool = False

    @staticmethod
    def resolve(name: str | os.PathLike | None) -> EncoderSpec:
        return EncoderSpec.resolve(name)

    def backend(self, requested: str | None, spec: EncoderSpec, device: str,
                previous: str | None, where: str) -> str:
        """The backend of the workers, resolved for their device (Ray is started here, so a
        cluster without the resources is said before the store is loaded)."""
        from retriever.backends import resolve_backend

        self.started = start_ray(self.cfg) or self.started
        return resolve_backend(requested, spec.checksum, placement(self.cfg, device).device,
                               previous, where)

    def load(self, spec: EncoderSpec, device: str = "auto", batch_size: int = 64,
             backend: str = "torch") -> RayEncoder:
        require_ray()  # said before anything is encoded
        encoder = RayEncoder(spec, self.cfg, device=device, batch_size=batch_size,
                             backend=backend, progress=self.progress)
        self.loaded.append(encoder)
        return encoder

    def close(self) -> None:
        """Shut down the Ray the encoders started."""
        for encoder in self.loaded:
            encoder.close()
        stop_ray(self.started)
        self.started = False
