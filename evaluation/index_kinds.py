"""The search-index choices evaluate.py's flags offer (--kinds, --kind, --exact-limit), apart from
evaluation.index and evaluation.neighbours, which import FAISS, pyarrow and TensorFlow: building the CLI's
parser, e.g. for `evaluate.py benchmark` on a machine with only JAX, imports none of them."""

KINDS = ("auto", "flat", "ivf-flat", "ivf-pq", "hnsw")
EXACT_LIMIT = 100_000  # more vectors than this get an approximate (HNSW) index
