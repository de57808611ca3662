"""The learnability checks of issue 15, too slow for the suite (about a minute each):
GRU and LSTM solve the adding problem at T=50 within 3000 steps (held-out MSE < 0.01),
and the tanh RNN does not learn it at T=100 (stays above 0.05), with the defaults of
`rnnbench.train`. Prints each run's history; exits 1 if any check fails.

    python tests/learnability.py
"""

import sys
import time

import rnnbench

# (arch, seq_len, the check on the best held-out MSE, what it says)
CHECKS = (
    ("gru", 50, lambda best: best < 0.01, "solves: held-out MSE < 0.01"),
    ("lstm", 50, lambda best: best < 0.01, "solves: held-out MSE < 0.01"),
    ("rnn_tanh", 100, lambda best: best > 0.05, "does not: held-out MSE stays > 0.05"),
)


def main() -> int:
    failed = 0
    for arch, seq_len, check, claim in CHECKS:
        start = time.perf_counter()
        history = rnnbench.train(arch, "adding", seq_len)
        seconds = time.perf_counter() - start
        best = history.eval_loss.min()
        solved = history.step[history.eval_loss < 0.01]
        print(f"{arch} adding T={seq_len}, {seconds:.0f} s:")
        print(history.to_string(index=False))
        verdict = "ok" if check(best) else "FAILED"
        first = f"first under 0.01 at step {solved.iloc[0]}" if len(solved) else "never under 0.01"
        print(f"{verdict}: {claim}; best {best:.4g}, {first}\n")
        failed += verdict != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
