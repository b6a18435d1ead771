#!/usr/bin/env python3
"""tests/repl_chat.py NVMOE MKMODEL - `nvmoe chat` driven through a pseudo-terminal.

A TINY-CI model (random weights) with the in-repo chat tokenizer.  Every wait polls the
terminal output with a deadline (no fixed sleeps).  Token counts are checked against an
independent path: `nvmoe template render FILE MODEL --ids` on the conversation the REPL
saved (or the messages typed), so the REPL must feed exactly the CHAT.md rendering of
its conversation, and reuse exactly the tokens of the previous prompt when it extends.

Session A (terminal): a turn, /think max, a turn, /save (the file is valid input of
`nvmoe template render`), /clear, /load, a turn on the loaded conversation, multi-line
input (trailing backslash, triple-quote block), unknown /command, bad /think, /load of
a non-JSON / missing file, /save into a missing directory, Ctrl-C at the prompt (the
line is dropped), /stats, /exit; history file written.
Session B (terminal, $XDG_STATE_HOME): Ctrl-C during a long generation stops it, the
REPL survives, Ctrl-D leaves.
Session C (stdin not a terminal): prefix reuse across turns, invalid UTF-8 input.
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

NV, MK = sys.argv[1], sys.argv[2]
DATA = os.environ["NV_TESTDATA"]
FAILS = []
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x07|\r")
SUMMARY = r"\[prompt (\d+) tokens \((\d+) reused\), [0-9.]+ tok/s \| answer (\d+) tokens, [0-9.]+ tok/s[^\]]*\]"


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, flush=True)


class Term:
    """A child process on a pseudo-terminal; output is read with deadlines."""

    def __init__(self, argv, env):
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd, self.raw, self.mark, self.status = pid, fd, b"", 0, None

    def text(self):
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def _pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        self.raw += data
        return True

    def expect(self, pattern, timeout=60, what=None):
        """Wait until pattern (regex) appears after the mark; move the mark past it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        alive = True
        while True:
            m = rx.search(self.text(), self.mark)
            if m:
                self.mark = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not alive:
                raise RuntimeError("%s waiting for %r (%s); output since the last match:\n%s"
                                   % ("timeout" if alive else "end of output", pattern, what or "",
                                      self.text()[self.mark:][-2000:]))
            alive = self._pump(min(left, 0.5))

    def send(self, s):
        os.write(self.fd, s if isinstance(s, bytes) else s.encode())

    def wait_prompt(self):
        """Input is sent only once readline shows a prompt: keys typed while the REPL
        is busy reach a terminal in cooked mode, where ^C / ^D act at once."""
        self.expect(r"\n(?:> |\.\.\. |\"\"\" )", what="prompt")

    def line(self, s):
        self.wait_prompt()
        self.send(s + "\r")

    def poll_exit(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status

    def wait_exit(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.poll_exit() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise RuntimeError("process did not exit; output:\n" + self.text()[-2000:])
            self._pump(0.2)
        while self._pump(0.05) and select.select([self.fd], [], [], 0)[0]:
            pass
        return self.status


def render_list(messages, model, tmp, mode="chat", effort=None):
    """Token ids of the CHAT.md rendering of messages (nvmoe template render --ids)."""
    path = os.path.join(tmp, "render.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"messages": messages, "thinking_mode": mode, "reasoning_effort": effort}, f, ensure_ascii=False)
    out = subprocess.run([NV, "template", "render", path, model, "--ids"], capture_output=True, check=True)
    return json.loads(out.stdout)


def render_ids(messages, model, tmp, mode="chat", effort=None):
    return len(render_list(messages, model, tmp, mode, effort))


def reusable(prev, new):
    """Tokens a sequence that was fed prev can keep for new: all of prev when it is a
    proper prefix of new, else none (a sequence cannot step back)."""
    return len(prev) if len(prev) < len(new) and new[:len(prev)] == prev else 0


def lcp(a, b):
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def reuse_mark(hist, mark, new):
    """gen.h's rule with marks: all of hist when it is a proper prefix of new, else the
    mark (start of the previous prompt's last chunk) when new still shares the ids up
    to it, else none."""
    common = lcp(hist, new)
    if 0 < len(hist) == common < len(new):
        return len(hist)
    if 0 < mark <= common and mark < len(new):
        return mark
    return 0


def summary(t, what):
    m = t.expect(SUMMARY, what=what)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def session_a(model, tmp):
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TERM": "xterm"}
    t = Term([NV, "chat", model, "--max-tokens", "12", "--seed", "7"], env)
    t.expect(r"/help for commands", what="banner")

    t.line("Hello there")
    t.expect(r"Hello there\n")
    start = t.mark
    n1, r1, g1 = summary(t, "turn 1")
    streamed = t.text()[start:t.mark]
    want = render_ids([{"role": "user", "content": "Hello there"}], model, tmp)
    if n1 != want or r1 != 0:
        fail("turn 1: prompt %d tokens (%d reused), expected %d (0 reused)" % (n1, r1, want))
    if g1 > 1 and not streamed.split("[prompt")[0].strip():
        fail("turn 1: %d tokens generated but no answer text shown" % g1)

    t.line("/think max")
    t.expect(r"think: max")
    t.line("Second question")
    n2, r2, _ = summary(t, "turn 2")
    if r2 != 0:
        fail("turn 2: the Think Max prefix changes the prompt start, yet %d tokens were reused" % r2)

    save = os.path.join(tmp, "conv.json")
    t.line("/save " + save)
    t.expect(r"saved 4 message\(s\) to ")
    try:
        conv = json.load(open(save, encoding="utf-8"))
    except (OSError, ValueError) as ex:
        fail("/save: %s" % ex)
        conv = {"messages": []}
    msgs = conv.get("messages", [])
    if conv.get("thinking_mode") != "thinking" or conv.get("reasoning_effort") != "max":
        fail("/save: mode %r effort %r" % (conv.get("thinking_mode"), conv.get("reasoning_effort")))
    roles = [m.get("role") for m in msgs]
    if roles != ["user", "assistant", "user", "assistant"]:
        fail("/save: roles %r" % roles)
    else:
        if msgs[0]["content"] != "Hello there" or msgs[2]["content"] != "Second question":
            fail("/save: user contents %r %r" % (msgs[0]["content"], msgs[2]["content"]))
        if "reasoning_content" not in msgs[3] or "reasoning_content" in msgs[1]:
            fail("/save: reasoning_content only on the thinking-mode answer: %r" % msgs)
        want = render_ids(msgs[:3], model, tmp, "thinking", "max")
        if n2 != want:
            fail("turn 2: prompt %d tokens, the saved conversation renders to %d" % (n2, want))
    rend = subprocess.run([NV, "template", "render", save], capture_output=True)
    if rend.returncode != 0:
        fail("nvmoe template render of the /save file: %s" % rend.stderr.decode())

    t.line("/clear")
    t.expect(r"conversation cleared")
    t.line("/load " + save)
    t.expect(r"loaded 4 message\(s\) from .*\(think: max\)")
    t.line("Third")
    n3, r3, _ = summary(t, "turn 3 (after /load)")
    if len(msgs) == 4:
        want = render_ids(msgs + [{"role": "user", "content": "Third"}], model, tmp, "thinking", "max")
        if n3 != want or r3 != 0:
            fail("turn 3: prompt %d tokens (%d reused), expected %d (0 reused after /clear)" % (n3, r3, want))

    t.line("/think none")
    t.expect(r"think: none")
    t.line("line one \\")
    t.line("line two")
    summary(t, "continued line")
    t.line('"""')
    t.line("block a")
    t.line("block b")
    t.line('"""')
    summary(t, "block")
    save2 = os.path.join(tmp, "conv2.json")
    t.line("/save " + save2)
    t.expect(r"saved 10 message\(s\)")
    try:
        users = [m["content"] for m in json.load(open(save2, encoding="utf-8"))["messages"] if m["role"] == "user"]
        if users[-2:] != ["line one \nline two", "block a\nblock b"]:
            fail("multi-line input: got %r" % users[-2:])
    except (OSError, ValueError, KeyError) as ex:
        fail("/save 2: %s" % ex)

    t.line("/bogus arg")
    t.expect(r"unknown command '/bogus' \(/help lists the commands\)")
    t.line("/think loud")
    t.expect(r"/think takes none, high or max \(got 'loud'\)")
    notjson = os.path.join(tmp, "notjson.txt")
    with open(notjson, "w") as f:
        f.write("hello, not json\n")
    t.line("/load " + notjson)
    t.expect(re.escape(notjson) + r": not valid JSON")
    t.line("/load " + os.path.join(tmp, "missing.json"))
    t.expect(r"missing\.json: cannot open")
    wrong = os.path.join(tmp, "wrong.json")
    with open(wrong, "w") as f:
        f.write('{"messages": [{"role": "wizard", "content": "x"}]}')
    t.line("/load " + wrong)
    t.expect(r"nvmoe chat: error: .*wrong\.json")
    t.line("/save " + os.path.join(tmp, "nodir", "x.json"))
    t.expect(r"nvmoe chat: error: .*nodir/x\.json.*cannot create")
    t.line("/help")
    t.expect(r"/save FILE")

    t.wait_prompt()
    t.send("typed but never sent")
    t.expect(r"typed but never sent")
    t.send(b"\x03")
    t.expect(r"\^C")
    t.line("/stats")
    m = t.expect(r"turns (\d+); context (\d+) of (\d+) tokens")
    if m.group(1) != "5":
        fail("/stats: %s turns, expected 5 (the Ctrl-C'd line must not be sent)" % m.group(1))
    t.line("/exit")
    st = t.wait_exit()
    if st != 0:
        fail("/exit: status %s" % st)
    hist = os.path.join(home, ".nvmoe_history")
    try:
        h = open(hist, encoding="utf-8").read()
        if "Hello there" not in h or "typed but never sent" in h:
            fail("history file: %r" % h[:300])
    except OSError as ex:
        fail("history file: %s" % ex)


def session_b(model, tmp):
    state = os.path.join(tmp, "state")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.path.join(tmp, "nohome"),
           "XDG_STATE_HOME": state, "TERM": "xterm"}
    # A context far longer than the answer can fill before Ctrl-C arrives, even when a
    # loaded machine delays this script by seconds (TINY-CI's 1024 positions fill in
    # about a second, and a full context ends the turn without "[stopped]").
    longm = os.path.join(tmp, "m-long")
    subprocess.run([MK, "--preset", "tiny-ci", "--out", longm, "--tokenizer-dir", os.path.join(DATA, "tok_chat"),
                    "--set", "max_position_embeddings=65536", "--quiet"], check=True, capture_output=True)
    t = Term([NV, "chat", longm, "--max-tokens", "100000", "--seed", "3", "--ctx", "65536"], env)
    t.expect(r"context (\d+)", what="banner")
    t.line("Go on and on")
    t.expect(r"Go on and on\n")
    t.expect(r"\S", what="answer text")   # generation is running
    t.send(b"\x03")
    t.expect(r"\[stopped\]", what="Ctrl-C during generation")
    _, _, g = summary(t, "stopped turn")
    if g >= 1000:
        fail("Ctrl-C: %d tokens generated: not stopped early" % g)
    t.line("/stats")
    m = t.expect(r"turns (\d+)")
    if m.group(1) != "1":
        fail("after Ctrl-C: %s turns" % m.group(1))
    t.wait_prompt()
    t.send(b"\x04")
    st = t.wait_exit()
    if st != 0:
        fail("Ctrl-D: status %s" % st)
    try:
        if "Go on and on" not in open(os.path.join(state, "nvmoe", "history"), encoding="utf-8").read():
            fail("XDG history file lacks the input")
    except OSError as ex:
        fail("XDG history file: %s" % ex)


def session_c(model, tmp):
    inp = b"a\nb\nok\xff\n/think high\nc\n/exit\nnever\n"
    p = subprocess.run([NV, "chat", model, "--max-tokens", "0"], input=inp, capture_output=True, timeout=120,
                       env={"PATH": os.environ.get("PATH", ""), "HOME": os.path.join(tmp, "nohome")})
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        fail("non-tty session: status %d: %s" % (p.returncode, err))
    s = [tuple(map(int, m.groups())) for m in re.finditer(SUMMARY, out)]
    a = render_list([{"role": "user", "content": "a"}], model, tmp)
    ab_msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}]
    ab = render_list(ab_msgs, model, tmp)
    # Think High with drop_thinking renders earlier user turns as chat mode does
    # (CHAT.md B.6), so this prompt extends the previous one.
    abc = render_list(ab_msgs + [{"role": "assistant", "content": ""}, {"role": "user", "content": "c"}], model, tmp,
                      "thinking")
    want = [(len(a), 0, 0), (len(ab), reusable(a, ab), 0), (len(abc), reusable(ab, abc), 0)]
    if want[1][1] == 0:
        fail("test premise: the second prompt should extend the first: %r %r" % (a, ab))
    if s != want:
        fail("non-tty turns (prompt, reused, answer): got %r, expected %r" % (s, want))
    if "invalid UTF-8 at byte 2" not in err:
        fail("invalid UTF-8 input: stderr %r" % err)


def session_d(model, tmp):
    """Thinking mode: each new prompt re-renders the previous answer without its
    reasoning, so it parts from the previous prompt at that prompt's last token
    (<think> becomes </think>).  The sequence rewinds to the mark saved at the start
    of the previous prompt's last chunk instead of starting over."""
    chunk = 4
    inp = b"/think high\nfirst question here\nsecond one\nthird\n/exit\n"
    p = subprocess.run([NV, "chat", model, "--max-tokens", "0", "--chunk", str(chunk)], input=inp,
                       capture_output=True, timeout=120,
                       env={"PATH": os.environ.get("PATH", ""), "HOME": os.path.join(tmp, "nohome")})
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        fail("thinking session: status %d: %s" % (p.returncode, err))
    s = [tuple(map(int, m.groups())) for m in re.finditer(SUMMARY, out)]
    msgs, want, hist, mark = [], [], [], 0
    for text in ("first question here", "second one", "third"):
        msgs.append({"role": "user", "content": text})
        ids = render_list(msgs, model, tmp, "thinking", "high")
        keep = reuse_mark(hist, mark, ids)
        want.append((len(ids), keep, 0))
        mark = keep + chunk * ((len(ids) - 1 - keep) // chunk)
        hist = ids
        msgs.append({"role": "assistant", "content": "", "reasoning_content": ""})
    if not (len(want) == 3 and 0 < want[1][1] < want[0][0] and want[2][1] > want[1][1]):
        fail("test premise: thinking-mode prompts should part before the previous prompt's end "
             "and reuse the mark: %r" % want)
    if s != want:
        fail("thinking-mode turns (prompt, reused, answer): got %r, expected %r" % (s, want))


def session_e(model, tmp):
    """/file: the attached text goes with the next message only, in the documented
    wrapping; bad files are refused with the file named and a hint; the REPL goes on."""
    doc = os.path.join(tmp, "doc.txt")
    text = "Line one of the report.\nZweite Zeile: Grüße, 你好.\n"
    with open(doc, "w", encoding="utf-8") as f:
        f.write(text)
    binf = os.path.join(tmp, "bin.dat")
    with open(binf, "wb") as f:
        f.write(b"abc\x00def")
    inp = ("/file %s\nWhat is it?\nAnd now?\n/file /nonexistent/x.txt\n/file %s\n/file %s\n/file\n/exit\n"
           % (doc, tmp, binf)).encode()
    p = subprocess.run([NV, "chat", model, "--max-tokens", "0"], input=inp, capture_output=True, timeout=120,
                       env={"PATH": os.environ.get("PATH", ""), "HOME": os.path.join(tmp, "nohome")})
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        fail("/file session: status %d: %s" % (p.returncode, err))
    if not re.search(r"attached doc\.txt: %d bytes, \d+ tokens" % len(text.encode()), out):
        fail("/file: no 'attached' line with the byte count: %r" % out)
    first = "<file name=\"doc.txt\">\n" + text + "\n</file>\n\nWhat is it?"
    m1 = [{"role": "user", "content": first}]
    m2 = m1 + [{"role": "assistant", "content": ""}, {"role": "user", "content": "And now?"}]
    want = [len(render_list(m1, model, tmp)), len(render_list(m2, model, tmp))]
    got = [int(m.group(1)) for m in re.finditer(SUMMARY, out)]
    if got != want:
        fail("/file turns: prompt tokens %r, expected %r (file with the first message only)" % (got, want))
    for what, pat in (("missing file", r"/nonexistent/x\.txt.*hint:"), ("directory", "not a regular file"),
                      ("binary file", r"binary file \(NUL byte at 3\)")):
        if not re.search(pat, err):
            fail("/file %s: stderr lacks %r: %r" % (what, pat, err))
    if "no file attached" not in out:
        fail("/file alone after the turn: the attachment should be gone: %r" % out)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m")
        subprocess.run([MK, "--preset", "tiny-ci", "--out", model, "--tokenizer-dir",
                        os.path.join(DATA, "tok_chat"), "--quiet"], check=True, capture_output=True)
        for s in (session_a, session_b, session_c, session_d, session_e):
            try:
                s(model, tmp)
            except (RuntimeError, subprocess.SubprocessError) as ex:
                fail("%s: %s" % (s.__name__, ex))
    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
