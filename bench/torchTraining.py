"""PyTorch reference for bench/training.bench.ts: the built-in models trained the way trainLocal trains them.

Usage: python torchTraining.py DATA_FILE COUNT BATCH_SIZE LEARNING_RATE TIMED_EPOCHS
       python torchTraining.py --serve DATA_FILE COUNT BATCH_SIZE LEARNING_RATE

DATA_FILE holds COUNT MNIST digits as float32 pixels (COUNT x 784, row-major) followed by COUNT int32
labels, written by the TypeScript bench. Same models as shared/ml/modelZoo.ts (mnist-cnn: conv 8x5x5
relu, maxpool 2, conv 16x5x5 relu, maxpool 2, dense 10; mlp: dense 128 relu, dense 10), plain SGD,
batch BATCH_SIZE, a fresh shuffle each epoch, mean cross-entropy, and the epoch's loss and accuracy kept
as tensors (as trainLocal keeps them on the backend). One thread. One untimed warm-up epoch, then the
best of TIMED_EPOCHS timed epochs, by wall time and by the process's CPU time. Prints one JSON object.

With --serve the process stays up for the bench to alternate epochs with TF.js in identical conditions:
it prints a JSON line {"ready": ...} once, then answers each stdin line "epoch MODEL [COUNT]" (one epoch
of MODEL on the first COUNT digits, default all; each model keeps its weights between commands) with a
JSON line: wall seconds, CPU seconds of this process (time.process_time: getrusage of this process
only, every thread) and of the calling thread (time.thread_time), the process's thread count, loss and
accuracy. "quit" or end of input stops it. A bad command is answered {"error": ...}.
"""

import json
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F


def models():
    cnn = nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 10),
    )
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    return [('mnist-cnn', cnn), ('mlp [128]', mlp)]


def epoch(model, optimizer, x, y, batch_size, generator):
    order = torch.randperm(x.shape[0], generator=generator)
    loss_sum = torch.zeros(())
    correct = torch.zeros((), dtype=torch.int64)
    for start in range(0, x.shape[0], batch_size):
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * idx.shape[0]
        correct += (logits.detach().argmax(1) == yb).sum()
    return float(loss_sum) / x.shape[0], int(correct) / x.shape[0]


def one_thread():
    """One intra-op and one inter-op thread, set before any parallel work (inter-op can only be set then)."""
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def load(path, count):
    with open(path, 'rb') as f:
        raw = bytearray(f.read())
    # NHWC with one channel has the same memory order as NCHW.
    x = torch.frombuffer(raw, dtype=torch.float32, count=count * 784).clone().reshape(count, 1, 28, 28)
    y = torch.frombuffer(raw, dtype=torch.int32, count=count, offset=count * 784 * 4).to(torch.int64)
    return x, y


def thread_count():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('Threads:'):
                return int(line.split()[1])
    return None


def serve(path, count, batch_size, lr):
    one_thread()
    torch.manual_seed(0)
    x, y = load(path, count)
    generator = torch.Generator().manual_seed(0)
    trainers = {name: (model, torch.optim.SGD(model.parameters(), lr=lr)) for name, model in models()}
    print(json.dumps({
        'ready': True, 'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'interopThreads': torch.get_num_interop_threads(), 'models': list(trainers),
        'parameters': {name: sum(p.numel() for p in m.parameters()) for name, (m, _) in trainers.items()},
    }), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == 'quit':
            break
        # Model names contain spaces ('mlp [128]'): the count, if any, is the last word when it is a number.
        n = count
        if len(words) > 2 and words[-1].isdigit():
            n, words = int(words[-1]), words[:-1]
        name = ' '.join(words[1:])
        if words[0] != 'epoch' or name not in trainers or not 1 <= n <= count:
            print(json.dumps({'error': f'expected "epoch MODEL [COUNT]" with MODEL in {list(trainers)} and 1 <= COUNT <= {count}, got {line.strip()!r}'}), flush=True)
            continue
        model, optimizer = trainers[name]
        started, cpu_started, thread_started = time.perf_counter(), time.process_time(), time.thread_time()
        loss, accuracy = epoch(model, optimizer, x[:n], y[:n], batch_size, generator)
        wall = time.perf_counter() - started
        cpu, thread_cpu = time.process_time() - cpu_started, time.thread_time() - thread_started
        print(json.dumps({
            'model': name, 'examples': n, 'wallSeconds': wall, 'cpuSeconds': cpu, 'threadCpuSeconds': thread_cpu,
            'processThreads': thread_count(), 'loss': loss, 'accuracy': accuracy,
        }), flush=True)


def main():
    if sys.argv[1] == '--serve':
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        return
    path, count, batch_size, lr, timed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    one_thread()
    torch.manual_seed(0)
    x, y = load(path, count)
    generator = torch.Generator().manual_seed(0)
    figures = []
    for name, model in models():
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        epoch(model, optimizer, x, y, batch_size, generator)
        best = float('inf')
        best_cpu = float('inf')
        for _ in range(timed):
            started, cpu_started = time.perf_counter(), time.process_time()
            loss, accuracy = epoch(model, optimizer, x, y, batch_size, generator)
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - cpu_started)
        figures.append({
            'model': name,
            'parameters': sum(p.numel() for p in model.parameters()),
            'samplesPerSecond': count / best,
            'epochSeconds': best,
            # CPU time of this process (every thread), which does not count waiting for a busy core.
            'cpuSamplesPerSecond': count / max(best_cpu, 1e-9),
            'lastLoss': loss,
            'lastAccuracy': accuracy,
        })
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'figures': figures}))


if __name__ == '__main__':
    main()
