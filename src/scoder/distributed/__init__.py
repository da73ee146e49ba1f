"""Running the pipeline's data-parallel work on Ray (`pip install -e '.[ray]'`): generation on
actors that each hold one engine (scoder.distributed.llm), the snippet pool on Ray tasks
(scoder.distributed.pool). In-process execution stays the default; docs/scale-out.md."""
