#!/usr/bin/env python3
"""Writes tok_chat/tokenizer.json: a small byte-level BPE tokenizer with the DeepSeek-V4
chat special tokens, so that `nvmoe run` / `nvmoe chat` (and `make run`) work on a fresh
clone without ../shared.  512 ids, the vocabulary of the TINY-CI preset:

  0, 1, 2      BOS, EOS, pad with DeepSeek's strings (CHAT.md A.6; also in model.vocab)
  3..258       the 256 byte-level symbols, id = 3 + byte
  259..506     248 merges learned below from a small English text
  507..511     <｜User｜>, <｜Assistant｜>, <think>, </think>, ｜DSML｜ (added tokens)

The pre-tokenizer, post-processor and decoder are copied from tok_tiny.json (itself a
verbatim copy of DeepSeek's, CHAT.md A.3).  Deterministic: rerunning gives the same file.
Run from tests/data: python3 make_tok_chat.py"""
import json
import os
import re

TEXT = """
Memory bandwidth is the rate at which data can be read from or stored into memory by a
processor. The model streams its experts from the disk when they are not in the cache, and
the cache keeps the experts that were used most recently. A token is a piece of text; the
tokenizer turns the text into tokens and the model predicts the next token from the ones
before it. Write a short poem about the sea, the sky and the wind. What is the capital of
France? The capital of France is Paris. Hello, how are you today? I am fine, thank you.
The quick brown fox jumps over the lazy dog. This is a test of the system, and there is
nothing more to it than that. We think that the answer is in the question, and the
question is in the answer. Reasoning comes before the answer when the model thinks.
"""

def byte_sym():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    m, k = {}, 0
    for b in range(256):
        if b in bs:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + k)
            k += 1
    return m

S = byte_sym()
N_MERGES = 248

# words with their leading space, as the DeepSeek pre-tokenizer mostly cuts them
words = re.findall(r" ?[A-Za-z]+| ?[^A-Za-z\s]+|\s+", TEXT)
seqs = [[S[b] for b in w.encode()] for w in words]
merges = []
for _ in range(N_MERGES):
    counts = {}
    for s in seqs:
        for a, b in zip(s, s[1:]):
            counts[(a, b)] = counts.get((a, b), 0) + 1
    if not counts:
        break
    # most frequent pair; ties broken by the pair itself for determinism
    best = max(counts.items(), key=lambda kv: (kv[1], [-ord(c) for c in kv[0][0] + "\0" + kv[0][1]]))[0]
    merges.append(best)
    a, b = best
    for i, s in enumerate(seqs):
        out, j = [], 0
        while j < len(s):
            if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                out.append(a + b)
                j += 2
            else:
                out.append(s[j])
                j += 1
        seqs[i] = out
assert len(merges) == N_MERGES, len(merges)

BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
PAD = "<\uff5c\u2581pad\u2581\uff5c>"
vocab = {BOS: 0, EOS: 1, PAD: 2}
for b in range(256):
    vocab[S[b]] = 3 + b
nid = 259
for a, b in merges:
    assert a + b not in vocab
    vocab[a + b] = nid
    nid += 1
assert nid == 507

def added(i, c, special):
    return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}

here = os.path.dirname(os.path.abspath(__file__))
tiny = json.load(open(os.path.join(here, "tok_tiny.json"), encoding="utf-8"))
extra = ["<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>", "<think>", "</think>", "\uff5cDSML\uff5c"]
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(0, BOS, True), added(1, EOS, True), added(2, PAD, True)]
                    + [added(507 + i, c, False) for i, c in enumerate(extra)],
    "normalizer": tiny["normalizer"], "pre_tokenizer": tiny["pre_tokenizer"],
    "post_processor": tiny["post_processor"], "decoder": tiny["decoder"],
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
}
os.makedirs(os.path.join(here, "tok_chat"), exist_ok=True)
with open(os.path.join(here, "tok_chat", "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
with open(os.path.join(here, "tok_chat", "generation_config.json"), "w", encoding="utf-8") as f:
    f.write('{\n  "bos_token_id": 0,\n  "eos_token_id": 1,\n  "do_sample": true,\n'
            '  "temperature": 1.0,\n  "top_p": 1.0\n}\n')
