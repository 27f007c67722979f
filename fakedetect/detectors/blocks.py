"""The `blocks` kind, RINE-style (Koutlis & Papadopoulos, ECCV 2024): the per-block features of
the backbone (features: layers), each standardised and projected to a common width, mixed by a
learned softmax weighting over the blocks, then a small head (Linear -> ReLU -> Linear) gives the
logit of fake. Trained with binary cross-entropy in torch, seeded; RINE's contrastive term is left
out. This module is the worked example of docs/detectors.md "Adding a detector".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fakedetect.detectors.kind import Kind
from fakedetect.params.detectors import BlocksDetectorParams
from fakedetect.stage import UserError


class _Network(torch.nn.Module):
    def __init__(self, widths: list[int], projection: int, units: int):
        super().__init__()
        self.widths = list(widths)
        self.projections = torch.nn.ModuleList(torch.nn.Linear(w, projection) for w in widths)
        self.block_logits = torch.nn.Parameter(torch.zeros(len(widths)))  # softmax: the blocks' weights
        self.head = torch.nn.Sequential(torch.nn.Linear(projection, units), torch.nn.ReLU(), torch.nn.Linear(units, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.widths, dim=1)
        projected = torch.stack([proj(part) for proj, part in zip(self.projections, parts)], dim=1)  # B x blocks x P
        mixed = (torch.softmax(self.block_logits, 0)[None, :, None] * projected).sum(1)
        return self.head(mixed)[:, 0]


class Blocks(Kind):
    Params = BlocksDetectorParams
    published, title = "rine", "per-block weighting (RINE-style)"

    def _network(self, widths: list[int]) -> _Network:
        return _Network(widths, self.params.projection, self.params.units)

    def fit(self, train, y_train, val, y_val) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a small network: one thread is fastest, and stays fast on a busy machine
        try:
            self._fit(train, y_train)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, train, y_train) -> None:
        p = self.params
        if not ((y_train == 0).any() and (y_train == 1).any()):
            raise UserError(f"detectors.{self.name}: the training split must hold real and fake rows")
        self.layer_names = [name for name, _ in train.layers]
        self.mean = train.x.mean(0).astype(np.float32)
        self.std = np.maximum(train.x.std(0), 1e-6).astype(np.float32)
        torch.manual_seed(p.seed)
        self.net = self._network([w for _, w in train.layers])
        x = torch.from_numpy((train.x - self.mean) / self.std).float()
        y = torch.from_numpy(np.asarray(y_train, np.float32))
        optimiser = torch.optim.AdamW(self.net.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        order = torch.Generator().manual_seed(p.seed)
        self.net.train()
        for _ in tqdm(range(p.epochs), desc=f"{self.name}: epochs", mininterval=2, leave=False):
            for batch in torch.randperm(len(x), generator=order).split(p.batch_size):
                optimiser.zero_grad()
                loss_fn(self.net(x[batch]), y[batch]).backward()
                optimiser.step()
        self.net.eval()

    def predict(self, inputs):
        x = torch.from_numpy((inputs.x - self.mean) / self.std).float()
        with torch.inference_mode():
            p = torch.sigmoid(self.net(x)).double().numpy()
        return p, p

    def report_extras(self) -> dict:
        """The learned softmax weight of each block."""
        weights = torch.softmax(self.net.block_logits.detach(), 0).numpy()
        return {"block_weights": {name: round(float(w), 4) for name, w in zip(self.layer_names, weights)}}

    def state(self) -> dict:
        tensors = {f"net.{key}": value.detach().numpy() for key, value in self.net.state_dict().items()}
        return {**tensors, "mean": self.mean, "std": self.std, "widths": np.asarray(self.net.widths, np.int64),
                "layer_names": np.asarray(self.layer_names)}

    def restore(self, arrays: dict, folder: Path) -> None:
        self.mean, self.std = arrays["mean"], arrays["std"]
        self.layer_names = [str(name) for name in arrays["layer_names"]]
        self.net = self._network([int(w) for w in arrays["widths"]])
        self.net.load_state_dict({key[4:]: torch.from_numpy(np.array(value)) for key, value in arrays.items()
                                  if key.startswith("net.")})
        self.net.eval()
