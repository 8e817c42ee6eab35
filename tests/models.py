"""Small real models for tests: the packaged MiniLM, and a tiny BERT encoder built from a config.

Loaded once per session (see the fixtures in conftest.py).
"""

from __future__ import annotations

from pathlib import Path


def tiny_encoder(directory: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide sentence-transformers model with MiniLM's tokenizer (random weights)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from retriever.encoder import default_model_path

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    bert_dir = directory / "bert"
    BertModel(cfg).save_pretrained(bert_dir)
    tok.save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=128)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pooling = models.Pooling(dim(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
    out = directory / "tiny-encoder"
    model.save(str(out))
    return out


def tiny_llama(directory: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide LlamaForCausalLM (random weights) with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from retriever.encoder import default_model_path

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                      bos_token_id=None, eos_token_id=tok.sep_token_id)
    out = directory / "tiny-llama"
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tiny_reranker(index: Path, base: Path, out: Path) -> Path:
    """A cross-scorer checkpoint trained for one step over *index* from the tiny LLaMA
    *base* (:func:`tiny_llama`): real files, meaningless scores."""
    from tuning.reranker import RerankTuneConfig, tune_reranker

    tune_reranker(RerankTuneConfig(index=index, out=out, base=str(base), group_size=3,
                                   steps=1, groups_per_step=1, depth=10, device="cpu",
                                   save_every=1, warmup_steps=0, max_length=128,
                                   max_question=48))
    return out
