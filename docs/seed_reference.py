"""Times the seed's PyTorch AlexNet and input pipeline, for side-by-side ratios.

This is the reference that the project's own benchmarks are compared with.
It reproduces the seed's model and training transform (the seed: the PyTorch
replica keras_alexnet grew from; kept here as it was measured, docs/BENCHMARKS.md) and
prints one JSON line. Run it in its own virtual environment, never in the
project's:

    python3 -m venv /tmp/seed-venv
    /tmp/seed-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 pillow
    /tmp/seed-venv/bin/python docs/seed_reference.py train --batch_size 64 --precision float32
    /tmp/seed-venv/bin/python docs/seed_reference.py infer --batch_size 64
    /tmp/seed-venv/bin/python docs/seed_reference.py loader --data imagenette/train --workers 2
    # what a PyTorch user would pick instead: torchvision's AlexNet, channels_last
    /tmp/seed-venv/bin/python docs/seed_reference.py train --model torchvision --channels_last --batch_size 128 --precision bfloat16

Measure the project's figure and this one in the same run, alternating, and
quote the ratio: absolute numbers on these shared machines drift.
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn


class SeedAlexNet(nn.Module):
    """The seed's model, layer for layer (LRN with PyTorch's alpha/n)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def make_model(args):
    """The seed's model, or torchvision's AlexNet variant (no LRN, no groups, about the same
    multiply-adds): what a PyTorch user would pick instead. channels_last is PyTorch's
    fastest CPU layout for convolutions."""
    if args.model == "torchvision":
        import torchvision
        model = torchvision.models.alexnet()
    else:
        model = SeedAlexNet()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_input(args):
    x = torch.randn(args.batch_size, 3, 224, 224)
    return x.contiguous(memory_format=torch.channels_last) if args.channels_last else x


def bench_train(args):
    model = make_model(args)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = make_input(args)
    y = torch.randint(0, 1000, (args.batch_size,))
    bf16 = args.precision == "bfloat16"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * args.batch_size / (time.perf_counter() - start)


def bench_infer(args):
    model = make_model(args).eval()
    x = make_input(args)
    bf16 = args.precision == "bfloat16"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(args.warmup):
            model(x)
        start = time.perf_counter()
        for _ in range(args.steps):
            model(x)
    return args.steps * args.batch_size / (time.perf_counter() - start)


class PCALighting:
    """The seed's PCA colour noise, with fixed ImageNet eigen-statistics."""

    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])

    def __call__(self, img):
        alpha = torch.randn(3) * 0.1
        rgb = (self.eigvec * alpha.unsqueeze(0)) @ self.eigval.unsqueeze(1)
        return img + rgb.view(3, 1, 1)


def bench_loader(args):
    from torchvision import datasets, transforms
    transform = transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), PCALighting(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(args.data, transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True,
        num_workers=args.workers, drop_last=True)
    it = iter(loader)
    for _ in range(args.warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(it)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["train", "infer", "loader"])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", choices=["seed", "torchvision"], default="seed",
                        help="seed: the seed's AlexNet; torchvision: torchvision.models.alexnet")
    parser.add_argument("--channels_last", action="store_true")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "imagenette", "train"))
    args = parser.parse_args()
    rate = {"train": bench_train, "infer": bench_infer, "loader": bench_loader}[args.what](args)
    system = "seed-pytorch" if args.model == "seed" else "torchvision-alexnet"
    if args.channels_last:
        system += "-channels-last"
    print(json.dumps({"system": system, "what": args.what, "batch_size": args.batch_size,
                      "precision": args.precision, "threads": torch.get_num_threads(),
                      "images_per_sec": round(rate, 2)}))


if __name__ == "__main__":
    main()
