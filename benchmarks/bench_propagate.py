"""Time one influence-propagation step; same as ``sparse-rtrl bench``.

python benchmarks/bench_propagate.py --out results/bench          # full (~10 min)
python benchmarks/bench_propagate.py --quick --out /tmp/bench     # smoke test
"""

from sparse_rtrl._bench import bench_command

if __name__ == "__main__":
    bench_command()
