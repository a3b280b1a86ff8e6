"""An in-process engine (`llamacpp`, `transformers`) served by several Ray actors.

`-M ray_replicas=N` (and `-M ray_gpus=G`, GPUs per replica, `-M ray_cpus=C`) loads the model
in N actors of the Ray cluster (`$RAY_ADDRESS`, else a local Ray), each with its own engine.
Calls go to the replica with the fewest in flight, each replica taking as many at once as its
engine batches; a replica that dies is dropped and its calls are retried on another (the
`Model` wrapper's retries). The replicas' options are the engine's own, so a call's cache key
is the same as without replicas: the weights and the greedy answers are the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from codeduel.errors import OptionError
from codeduel.models._provider import Capabilities, Provider, ProviderOptions, RetryableError
from codeduel.types import GenerateConfig, Message, ModelOutput

__all__ = ["REPLICA_OPTIONS", "RayReplicas"]

REPLICA_OPTIONS = ("ray_replicas", "ray_gpus", "ray_cpus")
"""Options that `load_model` takes for the replicas, not for the engine."""


class _EngineActor:
    """One replica: the engine, loaded in the actor (an async actor: calls overlap)."""

    def __init__(self, cls: type[Provider], model: str, options: ProviderOptions) -> None:
        self.provider = cls(model, options)
        load = getattr(self.provider, "load", None)
        if callable(load):
            load()

    def capabilities(self) -> Capabilities:
        return self.provider.capabilities

    def identity(self) -> dict[str, Any]:
        return self.provider.identity()

    def info(self) -> dict[str, Any]:
        import platform

        return {**self.provider.info(), "host": platform.node()}

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        return await self.provider.generate(messages, config)

    def close(self) -> None:
        self.provider.close()


@dataclasses.dataclass
class _Replica:
    index: int
    actor: Any
    outstanding: int = 0
    calls: int = 0


class RayReplicas(Provider):
    """`replicas` copies of `cls`'s engine, each a Ray actor."""

    def __init__(
        self,
        cls: type[Provider],
        model: str,
        options: ProviderOptions,
        replicas: int,
        gpus: float = 0.0,
        cpus: float = 1.0,
    ) -> None:
        super().__init__(model, options)
        self.name = cls.name  # type: ignore[misc]
        try:
            import ray
        except ImportError:
            raise OptionError(
                "-M ray_replicas needs Ray, which is not installed: pip install 'codeduel[ray]'"
            ) from None
        if not ray.is_initialized():
            ray.init(log_to_driver=False, include_dashboard=False)
        remote = ray.remote(_EngineActor)
        concurrency = 1024
        self._replicas = [
            _Replica(
                i,
                remote.options(num_gpus=gpus, num_cpus=cpus, max_concurrency=concurrency).remote(
                    cls, model, options
                ),
            )
            for i in range(replicas)
        ]
        first = self._replicas[0].actor
        inner: Capabilities = ray.get(first.capabilities.remote())
        self._identity: dict[str, Any] = ray.get(first.identity.remote())
        self._infos: list[dict[str, Any]] = ray.get([r.actor.info.remote() for r in self._replicas])
        self.capabilities = dataclasses.replace(
            inner, max_concurrency=inner.max_concurrency * replicas
        )

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        import ray

        if not self._replicas:
            raise RetryableError("every replica died")
        replica = min(self._replicas, key=lambda r: (r.outstanding, r.calls))
        replica.outstanding += 1
        replica.calls += 1
        try:
            output: ModelOutput = await replica.actor.generate.remote(messages, config)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            if replica in self._replicas:
                self._replicas.remove(replica)
            raise RetryableError(f"replica {replica.index} died: {type(exc).__name__}") from None
        finally:
            replica.outstanding -= 1
        return dataclasses.replace(output, extra={**output.extra, "replica": replica.index})

    def identity(self) -> dict[str, Any]:
        return self._identity

    def info(self) -> dict[str, Any]:
        return {**self._infos[0], "replicas": [i.get("host") for i in self._infos]}

    def close(self) -> None:
        import contextlib

        import ray

        for replica in self._replicas:
            with contextlib.suppress(Exception):
                ray.get(replica.actor.close.remote(), timeout=30)
            ray.kill(replica.actor)
        self._replicas = []
