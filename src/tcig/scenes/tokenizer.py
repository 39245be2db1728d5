"""A CLIP tokenizer for the scenes world: byte-level symbols plus BPE merges learned from scene captions.

Writes ``vocab.json`` and ``merges.txt`` in the format of OpenAI's CLIP tokenizer, so transformers'
``CLIPTokenizer`` loads it like any hub tokenizer.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins of CLIP's byte-level BPE: printable bytes map to themselves, the rest to U+0100…"""
    printable = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    symbols, extra = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def learn_merges(texts: Iterable[str], num_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE (Sennrich et al. 2016) over lowercase words, the last symbol of each word carrying ``</w>``."""
    words = Counter(word for text in texts for word in text.lower().split())
    corpus = {tuple(word[:-1]) + (word[-1] + "</w>",): n for word, n in words.items()}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in corpus.items():
            for pair in pairwise(symbols):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        corpus = {_merge(symbols, best): n for symbols, n in corpus.items()}
    return merges


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def write_tokenizer_files(folder: Path, merges: list[tuple[str, str]]) -> Path:
    """``vocab.json`` (bytes, bytes + ``</w>``, merged symbols, BOS, EOS) and ``merges.txt`` in ``folder``."""
    symbols = byte_symbols()
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges] + [BOS, EOS]:
        vocab.setdefault(token, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    return folder


def build_tokenizer(folder: Path, captions: Iterable[str], num_merges: int = 400, context_length: int = 77):
    """Learn merges from ``captions`` and return a ``CLIPTokenizer`` over them."""
    from transformers import CLIPTokenizer

    write_tokenizer_files(folder, learn_merges(captions, num_merges))
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=context_length)
