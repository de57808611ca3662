"""Memory of a float32 training step: the process's peak, and what BPTT keeps.

peakmem_ counts setup too (imports, inputs, the checked step): compare it across commits.
"""

from . import common


class Memory(common.ShapeBenchmark):
    def setup(self, refs, arch, backend, seq_len, batch, hidden):
        self.model, self.x, self.dy = common.training_case(
            refs, arch, backend, seq_len, batch, hidden
        )

    def peakmem_train_step(self, refs, arch, backend, seq_len, batch, hidden):
        common.train_step(self.model, self.x, self.dy, backend)

    def track_bptt_bytes(self, refs, arch, backend, seq_len, batch, hidden):
        self.model.forward(self.x)
        return self.model.tape_nbytes

    track_bptt_bytes.unit = "bytes"
