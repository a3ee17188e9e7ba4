"""GLUE (tensorflow-datasets ``glue/<task>``) with the MiniLM-BERT encoder and a head.

Needs the dataset prepared once with internet (``tfds build glue/sst2
--file_format=array_record``); offline, use configs/movie_reviews.py (same domain as SST-2).
The paper fine-tunes RoBERTa; the loader takes any WordPiece/BPE tokenizer callable.

    python -m experiments.main --config configs/glue.py:sst2 --workdir runs/sst2

Variants: a GLUE task name (sst2, cola, mrpc, qqp, mnli, qnli, rte, wnli), ``runlocal``.
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants

GLUE_TASKS = ("sst2", "cola", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli")


def get_config(arg: str = ""):
  v = parse_variants(arg, set(GLUE_TASKS) | {"runlocal"}, "configs/glue.py")
  c = base_config()
  c.task = "glue"
  task = next((t for t in GLUE_TASKS if t in v), "sst2")
  c.data = dict(glue_task=task, partition="iid", max_len=128, limit=0, data_dir="")
  c.model = model_section("bert", trainable="all")
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=1e-3, inner_upper=1.0, inner_lower=1e-5, outer_lr=1.0, outer_upper=0.01
  )
  c.clients = 8
  c.local_steps = 8
  c.batch_size = 32
  c.rounds = 300
  c.eval_every = 25
  c.eval_batch_size = 256
  c.report_metric, c.report_mode = "eval/accuracy", "max"
  c.sweep.methods = REAL_METHODS
  if "runlocal" in v:
    c.model.kwargs.update(trainable="head")
    c.data.max_len, c.data.limit = 24, 64
    c.clients, c.rounds, c.eval_every, c.checkpoint_every = 4, 2, 2, 0
    c.local_steps, c.batch_size = 1, 4
  return c
