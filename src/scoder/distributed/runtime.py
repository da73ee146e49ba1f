"""Where Ray runs, and with what: one settings block (`RayConfig`) and the connection to it.

`address` names an existing cluster ("auto", "ray://head:10001", "10.0.0.5:6379"); empty means
$SCODER_RAY_ADDRESS, and with that unset too a private local Ray bound to 127.0.0.1 is started
for this process (and stops with it). The settings say where work runs, never what it computes:
a Ray run's outputs equal an in-process run's, so they stay out of the response-cache keys.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

ADDRESS_ENV = "SCODER_RAY_ADDRESS"


@dataclass
class RayConfig:
    workers: int = 0  # Ray actors (one engine each); 0 = in-process, the default
    address: str = ""  # "" = $SCODER_RAY_ADDRESS, else a local Ray on 127.0.0.1
    num_cpus: float = 1.0  # per actor
    num_gpus: float = 0.0  # per actor (a vLLM engine with tensor_parallel_size k needs k)
    threads: int = 0  # torch threads in each actor; 0 = num_cpus (at least 1)
    max_restarts: int = 3  # a worker that dies is restarted this often and its batch retried

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError(f"ray.workers must be >= 0, not {self.workers}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError("ray.num_cpus and ray.num_gpus must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.workers > 0

    @property
    def actor_threads(self) -> int:
        return self.threads or max(1, int(self.num_cpus))


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("Ray execution (ray.workers > 0) needs the ray extra: pip install -e '.[ray]'") from exc
    return ray


# what the workers of a cluster need from the stage's environment to load models as the stage
# would (started by `ray start`, they do not inherit it); tokens are not forwarded: give the
# workers their own (HF_TOKEN) where a gated model needs one
FORWARDED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SCODER_MODEL_CACHE",
                 "XDG_CACHE_HOME", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM")


def connect(config: RayConfig):
    """The `ray` module, connected: to the named cluster, or to a private local one started
    here, bound to 127.0.0.1 (never a cluster this machine happens to run: RAY_ADDRESS and
    `ray start`'s address file are ignored unless named)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = config.address or os.environ.get(ADDRESS_ENV, "")
    common = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True,
              "configure_logging": False}
    if address:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        log.info("connecting to the Ray cluster at %s (forwarding %s)", address, ", ".join(env) or "no variables")
        ray.init(address=address, runtime_env={"env_vars": env}, **common)
        return ray
    # slots for the actors on top of the machine's cores, so tasks (the pool's) still find
    # room while actors live; the actors' torch threads, not Ray's slots, share the cores
    cpus = (os.cpu_count() or 1) + int(config.workers * max(config.num_cpus, 1))
    from ray._private import ray_constants

    # Ray swaps a loopback node address for the machine's reachable IP unless it believes it
    # runs without clusters (its Windows/macOS mode): believe that while this node starts
    clusters = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", num_cpus=cpus, num_gpus=None if config.num_gpus else 0,
                 _node_ip_address="127.0.0.1", **common)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clusters
    log.info("started a private local Ray at %s (%d CPU slots)", ray.get_runtime_context().gcs_address, cpus)
    return ray
    if not address:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before this call
    common = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True,
              "configure_logging": False}
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, **common)
    else:
        # slots for the actors on top of the machine's cores, so tasks (the pool's) still find
        # room while actors live; the actors' torch threads, not Ray's slots, share the cores
        cpus = (os.cpu_count() or 1) + int(config.workers * max(config.num_cpus, 1))
        log.info("starting a local Ray on 127.0.0.1 (%d CPU slots)", cpus)
        ray.init(num_cpus=cpus, num_gpus=0 if not config.num_gpus else None, _node_ip_address="127.0.0.1",
                 **common)
        log.info("local Ray at %s", ray.get_runtime_context().gcs_address)
    return ray
