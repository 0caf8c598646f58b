"""The file format of the task given as data (SEMANTICS.md, version 3; schema/certificate-v3.md).

ASCII text, one input per line, every line ending in "\\n":

    t_0 t_1 ... t_{n-1} -> l_1 ... l_r

tokens and labels as decimal integers (no sign, no leading zeros), separated by single spaces,
" -> " between the input and its labels. Every line has the same n >= 1 and 1 <= r <= n. The
model is read at the last r positions, n - r .. n - 1, and the input counts as correct only if
every one of them predicts its label. Lines may repeat (each counts). Anything else is refused
with the line number. The certificate carries the file's bytes and their sha256, which is what
`sha256sum FILE` prints, so that a user can match a verdict to their file.
"""

from __future__ import annotations

import re

import numpy as np

from compact_proofs.checker.errors import InvalidCertificate

MAX_LINES = 1 << 24
_NUMBER = r"(?:0|[1-9][0-9]{0,5})"
_LINE = re.compile(rf"({_NUMBER}(?: {_NUMBER})*) -> ({_NUMBER}(?: {_NUMBER})*)\Z")


def parse(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [lines, n], labels [lines, r]) as int64, or InvalidCertificate naming the line."""
    def fail(reason: str) -> InvalidCertificate:
        return InvalidCertificate("task data", reason)

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise fail("the file is not ASCII text") from None
    if not text.endswith("\n"):
        raise fail("the file is empty or its last line does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_LINES:
        raise fail(f"more than {MAX_LINES} lines")
    inputs, labels, shape = [], [], None
    for number, line in enumerate(lines, start=1):
        match = _LINE.match(line)
        if match is None:
            raise fail(f"line {number} is not 'tokens -> labels' (decimal integers separated by single spaces)")
        tokens, outs = match[1].split(" "), match[2].split(" ")
        if shape is None:
            shape = (len(tokens), len(outs))
            if shape[1] > shape[0]:
                raise fail(f"line {number} has more labels than tokens")
        elif (len(tokens), len(outs)) != shape:
            raise fail(f"line {number} has {len(tokens)} tokens and {len(outs)} labels; line 1 has {shape[0]} and {shape[1]}")
        inputs.append(tokens)
        labels.append(outs)
    return np.array(inputs, dtype=np.int64), np.array(labels, dtype=np.int64)


def write(inputs, labels) -> bytes:
    """The file for these inputs [lines, n] and labels [lines, r] (the inverse of parse)."""
    return "".join(" ".join(map(str, x)) + " -> " + " ".join(map(str, y)) + "\n"
                   for x, y in zip(np.asarray(inputs).tolist(), np.asarray(labels).tolist())).encode("ascii")
