"""Runs the PyTorch peer (``../shared/bench/torch_reference.py``) unchanged, on a CUDA GPU.

  python scripts/torch_reference_on_gpu.py ../shared/bench/torch_reference.py --model goodfellow --batch_size 128

The peer creates its model and data with torch's default device, made CUDA here, and times its
steps with ``time.perf_counter``, made to wait for the GPU first, so each timing covers finished work.
"""
import runpy
import sys
import time

import torch

if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device for the PyTorch peer")
    torch.set_default_device("cuda")
    wall_clock = time.perf_counter
    time.perf_counter = lambda: (torch.cuda.synchronize(), wall_clock())[1]
    reference, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(reference, run_name="__main__")
