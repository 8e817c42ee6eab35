"""Batch matching on a Ray cluster (``match --ray``).

Query batches are spread over Ray actors, each holding a :class:`~mathmatch.pipeline.Pipeline`
over the same index folder, opened read-only (the vectors memory-mapped), so every node needs
the index folder at the same path (a shared file system, or a copy) as well as the package and
its models.  Runs come back and are yielded in query order, as :meth:`Pipeline.stream` yields
them; at most two batches per actor are in flight.

Example:
    >>> for batch, run in ray_stream("idx", MatchConfig(), queries, RayConfig()):  # doctest: +SKIP
    ...     write_run(out, run)
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

from mathcore.runs import Run, batched
from mathmatch.pipeline import MatchConfig, Pipeline
from retriever.ray_encode import RayConfig, placement, require_ray, start_ray, stop_ray

logger = logging.getLogger(__name__)

# Batches queued per actor: one running, one waiting, so an actor never idles for the driver.
IN_FLIGHT_PER_ACTOR = 2


class Matcher:
    """A Ray actor's state: one pipeline over the index folder, loaded once."""

    def __init__(self, index_dir: str, config: MatchConfig, threads: int) -> None:
        if config.device != "cuda":
            import torch

            torch.set_num_threads(threads)
        self.pipeline = Pipeline(Path(index_dir), config)

    def run(self, batch: list[tuple[str, str]], k: int | None) -> Run:
        return self.pipeline.run(batch, k)

    def close(self) -> None:
        self.pipeline.close()


def ray_stream(index_dir: str | os.PathLike, config: MatchConfig,
               queries: Iterable[tuple[str, str]], ray_config: RayConfig,
               k: int | None = None) -> Iterator[tuple[list[tuple[str, str]], Run]]:
    """:meth:`Pipeline.stream` with the batches run on Ray actors: ``(batch, run)`` in query
    order.  Ray is started or joined as *ray_config* says (and shut down after, if started
    here); the actors are one per GPU of the cluster, else one per CPU (``workers`` says
    otherwise).

    Raises:
        ImportError: without the ``ray`` extra.
    """
    ray = require_ray()
    index_dir = Path(index_dir).resolve()
    with Pipeline(index_dir, config) as pipeline:
        pipeline.searcher  # noqa: B018  (a bad folder is said here, not by every actor)
    started = start_ray(ray_config)
    actors = []
    try:
        where = placement(ray_config, config.device)
        device = "cuda" if where.device == "cuda" else "cpu"
        remote = ray.remote(num_cpus=where.num_cpus, num_gpus=where.num_gpus)(Matcher)
        actor_config = replace(config, device=device, progress=False)
        actors = [remote.remote(str(index_dir), actor_config, int(where.num_cpus))
                  for _ in range(where.workers)]
        logger.info("matching on Ray: %d %s actors", len(actors), device.upper())
        in_flight: deque = deque()
        for i, batch in enumerate(batched(queries, config.batch_size)):
            in_flight.append((batch, actors[i % len(actors)].run.remote(batch, k)))
            if len(in_flight) >= IN_FLIGHT_PER_ACTOR * len(actors):
                done, ref = in_flight.popleft()
                yield done, ray.get(ref)
        while in_flight:
            done, ref = in_flight.popleft()
            yield done, ray.get(ref)
    finally:
        try:
            ray.get([a.close.remote() for a in actors])
        finally:
            for actor in actors:
                ray.kill(actor)
            stop_ray(started)
