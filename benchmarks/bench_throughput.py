"""Throughput of rnnbench's float32 kernels: inference (forward) and a training step.

Tokens per second are seq_len * batch / time; compile time stays in setup.
"""

from . import common


class Inference(common.ShapeBenchmark):
    def setup(self, refs, arch, backend, seq_len, batch, hidden):
        self.model, self.x = common.inference_case(refs, arch, backend, seq_len, batch, hidden)

    def time_forward(self, refs, arch, backend, seq_len, batch, hidden):
        common.forward(self.model, self.x, backend)


class Training(common.ShapeBenchmark):
    def setup(self, refs, arch, backend, seq_len, batch, hidden):
        self.model, self.x, self.dy = common.training_case(
            refs, arch, backend, seq_len, batch, hidden
        )

    def time_train_step(self, refs, arch, backend, seq_len, batch, hidden):
        common.train_step(self.model, self.x, self.dy, backend)
