"""Screening on a Ray cluster: the same run as :func:`datalint_persona.screening.engine.screen`,
with the y' generation and scoring spread over model replicas.

The driver reads every record once with the project's loaders (counts, invalid records, each
file's sha256), as a single run does. The samples are then split by position into shards (the
``--shard i/N`` split: sample ``g`` belongs to shard ``g % N + 1``), and a Ray Data pipeline hands
the shards to a pool of actors, one per model replica. Each actor loads the model once and runs
the engine's own generate-and-score loop on the shards it is given: it reads the records itself
(file and line kept), generates y' (transformers or vLLM backend) and projects y and y' onto the
vectors, with the y' and projection caches of ``cache_dir``. Generation and scoring share one
actor because scoring runs the same model forward, and the projections recorded while generating
spare the scoring pass over y'.

The per-sample scores come back to the driver, which puts them in run order and decides every
dataset-level statistic and verdict once, over all samples, with the same function as a single
run (:func:`datalint_persona.screening.result.build_result`). The result is the
:class:`~datalint_persona.run_records.ScreenResult` of a single run.

A worker that dies mid-run is restarted by Ray Data (its actor pools restart dead actors and
retry their work) and its shard is run again; the caches it had written spare the work it had done.
"""

from datalint_persona.distributed.run import import_ray, screen_dataset
from datalint_persona.distributed.worker import ShardOutcome, ShardScreener, WorkerError

__all__ = ["ShardOutcome", "ShardScreener", "WorkerError", "import_ray", "screen_dataset"]
