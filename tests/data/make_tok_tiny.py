#!/usr/bin/env python3
"""Writes tok_tiny.json: a hand-made byte-level BPE tokenizer for self-contained tests.

Ids: 0/1 added specials, 2..257 = the 256 byte symbols in byte order (id = 2 + byte),
258.. = the merges below in order, 300.. = added tokens.  The pre-tokenizer is copied
verbatim from DeepSeek's (CHAT.md A.3).  Expected encodings in tests/test_tok_tiny.c are
derived by hand from these merges."""
import json

def byte_sym():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    m, k = {}, 0
    for b in range(256):
        if b in bs:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + k); k += 1
    return m

S = byte_sym()
vocab = {}
for b in range(256):
    vocab[S[b]] = 2 + b
merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u0120", "w"), ("o", "r"),
          ("\u0120w", "or"), ("l", "d"), ("\u0120wor", "ld"), ("\u0120", "\u0120"),
          ("\u0120\u0120", "\u0120\u0120"), ("a", "a"), ("1", "2"), ("12", "3"),
          (S[0xE4], S[0xBD]), (S[0xE4] + S[0xBD], S[0xA0])]
nid = 258
for a, b in merges:
    vocab[a + b] = nid; nid += 1
assert nid == 274
vocab_sorted = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
# ids 0 and 1 are in the vocab too, as in DeepSeek's file
vocab_full = {"<\uff5cbos\uff5c>": 0, "<\uff5ceos\uff5c>": 1}
vocab_full.update(vocab_sorted)

def added(i, c, special):
    return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}

ref = json.load(open("/work/shared/ref/deepseek-v4-flash/tokenizer.reconstructed.json"))
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(0, "<\uff5cbos\uff5c>", True), added(1, "<\uff5ceos\uff5c>", True),
                     added(300, "<think>", False), added(301, "</think>", False),
                     added(302, "<\uff5cUser\uff5c>", False), added(303, "<\uff5cUs", False)],
    "normalizer": ref["normalizer"], "pre_tokenizer": ref["pre_tokenizer"],
    "post_processor": ref["post_processor"], "decoder": ref["decoder"],
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": vocab_full, "merges": [a + " " + b for a, b in merges]},
}
with open("tok_tiny.json", "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
