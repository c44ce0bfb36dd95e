"""Benchmark training throughput: maskforge's pipeline against a naive baseline, same model.

For each device (CPU, and CUDA when available) and the same architecture and input size
(resnet50 at 112x112 by default), measured side by side in one run:

  step   the training step alone, on a batch already in memory: maskforge (uint8 batch
         normalised on the device; on CUDA AMP bf16/fp16 and channels_last) against plain
         fp32 in the default memory format.
  loop   the full data + training loop on real photos: maskforge (decode once into a resized
         uint8 cache, albumentations from the cache in DataLoader workers, uint8 to the
         device) against torchvision ImageFolder + PIL transforms + fp32, same worker count.
  frozen --freeze-backbone: one-time feature extraction, then the head trained on cached
         features, against the full loop (per epoch and over --epochs epochs).

    python benchmarks/train.py                        # CPU (+ CUDA), short default run
    python benchmarks/train.py --batches 40 --images 2000 --json out.json
    python benchmarks/train.py --device cuda --batch-size 256 --batches 100 --images 20000

Numbers are images/s (higher is better); ratios are maskforge / naive.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import harness
import numpy as np
import torch

from maskforge.learn.cache import CachedImages, build_caches, train_cache_size
from maskforge.learn.devices import amp_dtype_for, autocast
from maskforge.learn.loaders import default_workers, make_loader
from maskforge.learn.loop import make_loss, train_one_epoch, validate_epoch
from maskforge.learn.models import build_model, head_module, headless
from maskforge.learn.samplers import EpochSampler, ShardSampler
from maskforge.learn.transforms import to_model_input, train_transform

FACES = Path(os.environ.get("MASKFORGE_SHARED_FACES", harness.FACES))
MEAN, STD = [0.55, 0.47, 0.43], [0.28, 0.26, 0.25]


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock times are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def new_model(arch: str, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """A fresh seeded model with one output (binary), on the device."""
    torch.manual_seed(0)
    model = build_model(arch, 1, "none").to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def trainer(args, device: torch.device, ours: bool) -> Callable[[Iterable], dict]:
    """A training epoch over the batches it is given, of a fresh model: maskforge's (uint8
    batches normalised on the device; on CUDA AMP and channels_last) or plain fp32."""
    amp = amp_dtype_for(device, True) if ours else None
    channels_last = ours and device.type == "cuda"
    model = new_model(args.arch, device, channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return to_model_input(x, *_stats(device), channels_last=channels_last) if ours else x

    options = dict(loss_fn=make_loss(1), prepare=prepare, amp_dtype=amp, scaler=scaler)
    return lambda batches: train_one_epoch(model, batches, optimizer, device, **options)


def step_rate(args, device: torch.device, ours: bool) -> float:
    """Images/s of forward + backward + SGD step on one in-memory batch."""
    epoch = trainer(args, device, ours)
    gen = torch.Generator().manual_seed(0)
    size, n = args.img_size, args.batch_size
    u8 = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen).to(device)
    floats = to_model_input(u8, *_stats(device))  # the naive input: float32 NCHW contiguous
    targets = torch.randint(0, 2, (n,), generator=gen).to(device)
    batch = [(u8 if ours else floats, targets, torch.ones(n, device=device))]
    for _ in range(args.warmup):
        epoch(batch)
    sync(device)
    with harness.Timer() as timer:
        for _ in range(args.batches):
            epoch(batch)
        sync(device)
    return args.batches * n / timer.seconds


def _stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(MEAN, device=device).view(1, 3, 1, 1),
        torch.tensor(STD, device=device).view(1, 3, 1, 1),
    )


def image_cache(photos: list[str], size: int, args, workdir: Path):
    """The photos decoded once, resized to `size`, in maskforge's image cache under workdir."""
    options = dict(workers=max(2, args.workers), name="benchmark", progress=False)
    return build_caches(photos, [size], workdir / "cache", **options)[size]


def timed_batches(loader, count: int, warmup: int, clock: harness.Timer):
    """Yield `warmup` + `count` batches, cycling the loader; clock restarts after warmup."""
    produced = 0
    while True:
        for batch in loader:
            if produced == warmup:
                clock.restart()
            if produced == warmup + count:
                return
            produced += 1
            yield batch


class FolderWithWeights(torch.utils.data.Dataset):
    """An ImageFolder's (image, target) items with a weight of 1 (the loop's batch format)."""

    def __init__(self, folder):
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        image, target = self.folder[i]
        return image, target, 1.0


def loop_rate(
    args, device: torch.device, ours: bool, photos: list[str], labels: np.ndarray, workdir: Path
) -> tuple[float, float]:
    """(images/s of the full loop, one-time cache seconds) for maskforge or the naive loader."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    epoch = trainer(args, device, ours)
    pin = device.type == "cuda"
    cache_time = harness.Timer()  # 0 seconds for the naive loader
    if ours:
        with cache_time:
            cache = image_cache(photos, train_cache_size(args.img_size), args, workdir)
        dataset = CachedImages(cache, labels, transform=train_transform(args.img_size), seed=0)
        sampler = EpochSampler(len(dataset), shuffle=True, seed=0)
        loader = make_loader(
            dataset, sampler, args.batch_size, drop_last=True, workers=args.workers, pin_memory=pin
        )
    else:
        transform = T.Compose(
            [
                T.RandomResizedCrop(args.img_size, scale=(0.7, 1.0), ratio=(0.85, 1.18)),
                T.RandomHorizontalFlip(),
                T.RandomRotation(12),
                T.ColorJitter(0.3, 0.3, 0.3, 0.03),
                T.ToTensor(),
                T.Normalize(MEAN, STD),
            ]
        )
        folder = ImageFolder(str(workdir / "imagefolder"), transform=transform)
        loader = torch.utils.data.DataLoader(
            FolderWithWeights(folder),
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            pin_memory=pin,
            persistent_workers=args.workers > 0,
            generator=torch.Generator().manual_seed(0),
        )
    clock = harness.Timer()
    epoch(timed_batches(loader, args.batches, args.warmup, clock))
    sync(device)
    return args.batches * args.batch_size / clock.elapsed(), cache_time.seconds


def frozen_rates(
    args, device: torch.device, photos: list[str], labels: np.ndarray, workdir: Path
) -> dict:
    """--freeze-backbone: feature extraction images/s (once) and head-epoch images/s."""
    amp = amp_dtype_for(device, True)
    channels_last = device.type == "cuda"
    model = new_model(args.arch, device, channels_last).eval()
    dataset = CachedImages(image_cache(photos, args.img_size, args, workdir), labels)
    loader = make_loader(
        dataset,
        ShardSampler(len(dataset)),
        2 * args.batch_size,
        drop_last=False,
        workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    sync(device)
    with harness.Timer() as timer:
        parts = []
        with torch.no_grad(), headless(model):
            for inputs, _, _ in loader:
                x = to_model_input(inputs.to(device), *_stats(device), channels_last=channels_last)
                with autocast(device, amp):
                    parts.append(model(x).float())
        features = torch.cat(parts)
        sync(device)
    extract = len(features) / timer.seconds
    head = head_module(model).train()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    targets = torch.from_numpy(labels)
    weights = torch.ones(len(labels))
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    batches = [(features[i], targets[i], weights[i]) for i in order.split(args.batch_size)]
    with harness.Timer() as timer:
        train_one_epoch(head, batches, optimizer, device, loss_fn=make_loss(1))
        validate_epoch(head, batches, device, loss_fn=make_loss(1))
        sync(device)
    head_epoch = len(features) / timer.seconds
    return {"extract_images_per_s": extract, "head_epoch_images_per_s": head_epoch}


def real_photos(count: int) -> tuple[list[str], np.ndarray]:
    """Up to `count` photos from ../shared/faces, half masked (label 1), half unmasked (0)."""
    masked = sorted((FACES / "masked_real").glob("*.jpg"))
    unmasked = sorted((FACES / "unmasked").glob("*.jpg"))
    if not masked or not unmasked:
        sys.exit(f"No photos under {FACES} (set MASKFORGE_SHARED_FACES).")
    half = count // 2
    chosen = [(p, 1) for p in (masked * (half // len(masked) + 1))[:half]]
    chosen += [(p, 0) for p in (unmasked * (half // len(unmasked) + 1))[: count - half]]
    return [str(p) for p, _ in chosen], np.array([y for _, y in chosen], dtype=np.int64)


def image_folder(photos: list[str], labels: np.ndarray, root: Path) -> None:
    """ImageFolder layout (root/<class>/<n>.jpg) as symlinks to the photos."""
    for i, (path, label) in enumerate(zip(photos, labels, strict=True)):
        target = root / ("masked" if label else "unmasked") / f"{i:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CPU, plus CUDA when available (default)",
    )
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--img-size", type=int, default=112)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: 32 on CPU, 128 on CUDA"
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=None,
        help="timed batches per measurement (default: 5 on CPU, 50 on CUDA)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="real photos used (repeated if needed; default: enough for the batches)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: maskforge's)"
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs for the frozen-backbone total"
    )
    harness.add_json_option(parser, "train")
    cli = parser.parse_args()

    devices = (
        ["cpu"]
        if cli.device == "cpu"
        else ["cuda"]
        if cli.device == "cuda"
        else (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    )
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("--device cuda but no CUDA GPU is available.")
    results = {
        "arch": cli.arch,
        "img_size": cli.img_size,
        **harness.environment("python", "cpu_count"),
        "torch": str(torch.__version__),
        "torch_threads": torch.get_num_threads(),
        "devices": {},
    }
    rows = []
    for name in devices:
        device = torch.device(name)
        args = argparse.Namespace(**vars(cli))
        args.batch_size = cli.batch_size or (128 if name == "cuda" else 32)
        args.batches = cli.batches or (50 if name == "cuda" else 5)
        args.workers = cli.workers if cli.workers is not None else default_workers(name)
        images = cli.images or args.batch_size * (args.batches + args.warmup)
        photos, labels = real_photos(images)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            image_folder(photos, labels, workdir / "imagefolder")
            r = {
                "batch_size": args.batch_size,
                "batches": args.batches,
                "workers": args.workers,
                "images": images,
                "amp": str(amp_dtype_for(device, True) or "fp32"),
            }
            if name == "cuda":
                r["gpu"] = torch.cuda.get_device_name(device)
            print(f"[{name}] step (maskforge)...", flush=True)
            r["step_ours"] = step_rate(args, device, ours=True)
            print(f"[{name}] step (naive)...", flush=True)
            r["step_naive"] = step_rate(args, device, ours=False)
            print(f"[{name}] loop (maskforge, builds the cache first)...", flush=True)
            r["loop_ours"], r["cache_seconds"] = loop_rate(
                args, device, True, photos, labels, workdir
            )
            print(f"[{name}] loop (naive ImageFolder + PIL)...", flush=True)
            r["loop_naive"], _ = loop_rate(args, device, False, photos, labels, workdir)
            print(f"[{name}] frozen backbone...", flush=True)
            r["frozen"] = frozen_rates(args, device, photos, labels, workdir)
        # Over E epochs on these images: frozen = extract once + E head epochs; full = E loops.
        n, e = images, args.epochs
        frozen_total = (
            n / r["frozen"]["extract_images_per_s"] + e * n / r["frozen"]["head_epoch_images_per_s"]
        )
        r["frozen_speedup_over_epochs"] = (e * n / r["loop_ours"]) / frozen_total
        results["devices"][name] = r
        rows += [
            (name, "train step", r["step_ours"], r["step_naive"]),
            (name, "data + train loop", r["loop_ours"], r["loop_naive"]),
            (
                name,
                "frozen head epoch vs full loop",
                r["frozen"]["head_epoch_images_per_s"],
                r["loop_ours"],
            ),
        ]
        print(
            f"[{name}] cache build {r['cache_seconds']:.1f} s for {images} images; feature "
            f"extraction {r['frozen']['extract_images_per_s']:.1f} img/s; frozen backbone is "
            f"{r['frozen_speedup_over_epochs']:.1f}x faster than full training over {e} epochs "
            "(extraction included)"
        )

    print()
    print(f"{cli.arch} at {cli.img_size}x{cli.img_size}, images/s")
    table = [(name, what, ours, base, f"{ours / base:.2f}x") for name, what, ours, base in rows]
    rates = [("maskforge", ">10.1f"), ("baseline", ">10.1f"), ("ratio", ">7")]
    harness.print_table(table, [("device", "<6"), ("measure", "<32"), *rates])
    print()
    harness.write_json(cli.json, results)


if __name__ == "__main__":
    main()
