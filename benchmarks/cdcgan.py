"""The baseline: a textbook conditional DCGAN (Radford et al. 2016, with labels as in Mirza & Osindero).

G: noise and a label embedding -> dense 7x7x256 -> transposed convs to 14x14x128 and 28x28x1,
BatchNorm and ReLU, tanh. D: the image with one-hot label maps as extra channels -> strided
convs with LeakyReLU -> one logit. Non-saturating loss, Adam 2e-4 with beta1 0.5, batch 128.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn


class CDCGANGenerator(nn.Module):
    def __init__(self, num_classes: int = 10, z_dim: int = 100, channels: int = 1):
        super().__init__()
        self.z_dim = z_dim
        self.label_embed = nn.Embedding(num_classes, 50)
        self.fc = nn.Sequential(nn.Linear(z_dim + 50, 256 * 7 * 7), nn.BatchNorm1d(256 * 7 * 7), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, channels, 3, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([z, self.label_embed(labels)], dim=1)).view(-1, 256, 7, 7)
        return self.net(x)


class CDCGANDiscriminator(nn.Module):
    def __init__(self, num_classes: int = 10, channels: int = 1):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(channels + num_classes, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.BatchNorm2d(256), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(256 * 4 * 4, 1),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        maps = F.one_hot(labels, self.num_classes).float()[:, :, None, None].expand(-1, -1, *images.shape[-2:])
        return self.net(torch.cat([images, maps], dim=1)).flatten()


def train_cdcgan(images: torch.Tensor, labels: torch.Tensor, seconds: float, seed: int = 0, batch_size: int = 128,
                 ) -> tuple[CDCGANGenerator, dict]:
    """Train for ``seconds`` of wall clock on uint8 (N, 1, 28, 28) images; returns G (eval mode) and stats."""
    torch.manual_seed(seed)
    generator, discriminator = CDCGANGenerator(), CDCGANDiscriminator()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    start, steps = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        index = torch.randint(0, len(images), (batch_size,))
        real = images[index].float() / 127.5 - 1
        label = labels[index]
        fake = generator(torch.randn(batch_size, generator.z_dim), label)
        loss_d = bce(discriminator(real, label), torch.ones(batch_size)) + \
            bce(discriminator(fake.detach(), label), torch.zeros(batch_size))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(discriminator(fake, label), torch.ones(batch_size))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        steps += 1
    return generator.eval(), {"steps": steps, "batch_size": batch_size, "seconds": time.monotonic() - start}


@torch.no_grad()
def sample_cdcgan(generator: CDCGANGenerator, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    z = torch.randn(len(labels), generator.z_dim, generator=torch.Generator().manual_seed(seed))
    out = torch.cat([generator(z[i:i + 500], labels[i:i + 500]) for i in range(0, len(labels), 500)])
    return ((out + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
