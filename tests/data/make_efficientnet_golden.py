"""Make tests/data/efficientnet_lite0_golden.npz with timm, an independent reference.

Run once by a maintainer; the .npz is committed and tests/test_offline_images.py
compares hybridml's keras-hub EfficientNet-Lite0 against it. Needs torch and timm,
which hybridml itself never needs. How it was run (timm 1.0.31, torch 2.13.0+cpu;
timm imports torchvision, and the PyPI torchvision 0.28.0 wheel is a CUDA build
whose compiled ops fail to load beside CPU torch, so its ``_C.so`` was moved
aside and ``_meta_registrations.py`` emptied in a throwaway copy; the network
code timm runs here uses torch alone)::

    pip install --no-deps timm==1.0.31 torchvision==0.28.0 -t /tmp/timmlib
    # disable torchvision's CUDA ops in /tmp/timmlib as said above
    PYTHONPATH=/tmp/timmlib .venv/bin/python tests/data/make_efficientnet_golden.py

What it checks and records:

1. The weights are read by ``torch.load`` (not hybridml's reader), and must equal
   what hybridml's torch-free reader returns.
2. The lukemelas -> timm name mapping is derived independently, by pairing the two
   state dicts in module order and checking every shape, and must equal
   ``rename_to_timm``. The key sets match exactly (247/247).
3. Inputs: each shipped photo, centre-cropped to a square and resized to 224x224
   with PIL bicubic, as uint8 (``input_sha256`` pins them), scaled to [-1, 1].
4. timm ``efficientnet_lite0`` with these weights gives the pooled pre-logits
   features (global average of the last feature map, 1280-d) and the logits.

It also prints the evidence for the input normalisation (mean/std 0.5 versus
ImageNet's), which hybridml.embed.efficientnet.MEAN/STD record.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from hybridml.datasets import load_sample_photos
from hybridml.embed import efficientnet as eff

OUT = Path(__file__).with_name("efficientnet_lite0_golden.npz")
IMAGENET = (np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))
HALF = (np.array([0.5] * 3), np.array([0.5] * 3))


def square_224(path: str) -> np.ndarray:
    """Centre square crop, then bicubic resize to 224x224, uint8 RGB."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        return np.asarray(img.resize((224, 224), Image.BICUBIC, box=box))


def timm_model(state: dict[str, np.ndarray]) -> torch.nn.Module:
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False
    )
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return model.eval()


def main() -> None:
    source = eff.source_file()
    eff.check_sha256(source)
    raw = torch.load(str(source), map_location="cpu", weights_only=True)
    ours = eff.read_legacy_state_dict(source)
    assert raw.keys() == ours.keys()
    assert all(np.array_equal(raw[k].numpy(), ours[k]) for k in raw)

    # independent mapping: both state dicts list modules in forward order
    timm_sd = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    a = [k for k in raw if not k.endswith("num_batches_tracked")]
    b = [k for k in timm_sd if not k.endswith("num_batches_tracked")]
    assert len(a) == len(b) == 247
    assert all(
        tuple(raw[x].shape) == tuple(timm_sd[y].shape)
        for x, y in zip(a, b, strict=True)
    )
    renamed = eff.rename_to_timm(ours)
    assert list(renamed) == b and all(
        np.array_equal(renamed[y], raw[x].numpy()) for x, y in zip(a, b, strict=True)
    )
    print("weights: torch.load == hybridml reader; 247/247 keys map in order")

    model = timm_model(renamed)
    photos = load_sample_photos()
    u8 = np.stack([square_224(p) for p in photos["path"]])

    def run(norm):
        x = (u8.astype(np.float32) / 255.0 - norm[0]) / norm[1]
        t = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))
        with torch.no_grad():
            feats = model.forward_features(t)
            pooled = model.forward_head(feats, pre_logits=True)
            logits = model.forward_head(feats)
        return pooled.numpy(), logits.numpy()

    # evidence for the normalisation
    for tag, norm in (("mean/std 0.5", HALF), ("ImageNet mean/std", IMAGENET)):
        _, logits = run(norm)
        top = logits.argmax(1)
        right = [
            int(t) in ids
            for t, ids in zip(top, photos["imagenet_ids"], strict=True)
            if ids
        ]
        x = (u8.astype(np.float32) / 255.0 - norm[0]) / norm[1]
        stem = torch.nn.functional.conv2d(
            torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)),
            torch.from_numpy(renamed["conv_stem.weight"]),
            stride=2,
            padding=1,
        )
        var = stem.var(dim=(0, 2, 3)).numpy()
        live = renamed["bn1.running_var"] > 1e-3
        ratio = np.median(var[live] / renamed["bn1.running_var"][live])
        print(
            f"{tag}: top-1 right on {sum(right)}/{len(right)} photos; stem output "
            f"variance on the photos / stem BN running variance = {ratio:.2f}"
        )

    pooled, logits = run(HALF)
    np.savez_compressed(
        OUT,
        names=np.array(photos["name"].tolist()),
        timm_keys=np.array(b),
        input_sha256=np.array(hashlib.sha256(u8.tobytes()).hexdigest()),
        pooled=pooled.astype(np.float32),
        logits=logits.astype(np.float32),
        timm_version=np.array(timm.__version__),
        torch_version=np.array(torch.__version__),
    )
    top = logits.argmax(1)
    print("top-1:", dict(zip(photos["name"], top.tolist(), strict=True)))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
