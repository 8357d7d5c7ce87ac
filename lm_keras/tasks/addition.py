"""minGPT's 2-digit addition, the sanity task: all 10,000 sums of two numbers below 100."""

DESCRIPTION = (
    "2-digit addition as minGPT writes it: prompt 'ab+cd=' (zero-padded), completion the 3-digit sum "
    "zero-padded and written backwards, least significant digit first, so a left-to-right model can "
    "carry (12+39= -> 150, for 051)"
)
CORPUS = None


def examples(text, max_chars):
    del text  # the task needs no corpus
    return [
        (f"{a:02d}+{b:02d}=", f"{a + b:03d}"[::-1])
        for a in range(100)
        for b in range(100)
        if len(f"{a:02d}+{b:02d}=") + 3 <= max_chars
    ]
