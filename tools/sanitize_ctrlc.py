#!/usr/bin/env python3
"""tools/sanitize_ctrlc.py NVMOE MKMODEL TMPDIR - Ctrl-C during a long prefill of
`nvmoe chat` on a pseudo-terminal (layer-major with a streaming host cache, layer-major
resident, chunk-major streaming), then two more turns and /exit, which must give status 0.
Meant for the sanitizer build (tools/sanitize.sh): the reports land in the log_path of
ASAN_OPTIONS / UBSAN_OPTIONS, which the environment passes through."""
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NV, MK, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.argv = [sys.argv[0], NV, MK]
os.environ.setdefault("NV_TESTDATA", os.path.join(HERE, "..", "tests", "data"))
import repl_chat as R  # noqa: E402  (the Term helper)

model = os.path.join(TMP, "m-long")
subprocess.run([MK, "--preset", "tiny-ci", "--out", model, "--tokenizer-dir", os.path.join(HERE, "..", "tests", "data", "tok_chat"),
                "--set", "max_position_embeddings=65536", "--quiet"], check=True)
doc = os.path.join(TMP, "doc.txt")
random.seed(1)
words = ["alpha", "beta", "gamma", "delta", "word", "the", "model", "runs", "fast", "on", "disk"]
with open(doc, "w") as f:
    f.write(" ".join(random.choice(words) for _ in range(6000)))   # ~24k tokens of the tiny vocabulary
env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": TMP, "TERM": "xterm"}
for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
    if k in os.environ:
        env[k] = os.environ[k]
bad = 0
for extra in (["--host-cache", "256K", "--prefill-order", "layer"],
              ["--host-cache", "1M", "--prefill-order", "layer", "--lookahead", "16"],
              ["--prefill-order", "layer"], ["--host-cache", "256K", "--prefill-order", "chunk"]):
    try:
        t = R.Term([NV, "chat", model, "--max-tokens", "4", "--ctx", "65536", "--chunk", "256", "--threads", "2"] + extra, env)
        t.expect(r"/help for commands", what="banner")
        t.line("/file " + doc)
        t.expect(r"attached doc\.txt")
        t.line("/think high")
        t.line("please summarise")
        t.expect(r"\[prompt +\d+%", timeout=120, what="progress line")
        t.send(b"\x03")
        t.expect(r"\[stopped\]", timeout=120, what="stop")
        t.line("/file")
        t.line("short one")
        t.expect(R.SUMMARY, timeout=120, what="turn after the stop")
        t.line("second short")
        t.expect(R.SUMMARY, timeout=120, what="second turn after the stop")
        t.line("/exit")
        st = t.wait_exit(120)
    except RuntimeError as ex:
        st = str(ex)
    print("%-6s Ctrl-C during prefill %s: exit %s" % ("ok" if st == 0 else "FAIL", " ".join(extra), st), flush=True)
    bad += st != 0
sys.exit(1 if bad else 0)
